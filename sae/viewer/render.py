"""Draws a :class:`~sae.viewer.scene.Scene` with wgpu: into a window's texture or offscreen.

One shader module (``view.wgsl``), two pipelines (rectangles and glyphs), one
atlas texture, and instance buffers that grow when a frame needs more. Offscreen
frames and window screenshots are read back the same way and saved as PNG.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import numpy as np

from sae.errors import InputError
from sae.io import write_atomically
from sae.viewer.font import ATLAS_SIZE
from sae.viewer.scene import GLYPH_FLOATS, RECT_FLOATS, Scene

#: The format offscreen frames are rendered in (shaders write sRGB values as they are).
OFFSCREEN_FORMAT = "rgba8unorm"


def request_device():  # -> (wgpu.GPUAdapter, wgpu.GPUDevice)
    """A wgpu adapter and device to draw with (any adapter, software ones included)."""
    import wgpu

    try:
        adapter = wgpu.gpu.request_adapter_sync(power_preference="high-performance")
    except Exception as exc:  # wgpu raises its own error types, varying by version
        raise InputError(f"no wgpu adapter to draw the viewer with ({exc})") from None
    if adapter is None:
        raise InputError("no wgpu adapter to draw the viewer with")
    return adapter, adapter.request_device_sync(label="sae view")


def shader_source() -> str:
    return resources.files("sae.viewer").joinpath("view.wgsl").read_text()


class Renderer:
    """Pipelines and buffers for drawing scenes into textures of ``target_format``."""

    def __init__(self, device, target_format: str) -> None:
        import wgpu

        self.device, self.format = device, target_format
        module = device.create_shader_module(label="sae view", code=shader_source())
        self.uniform = device.create_buffer(label="sae view screen", size=16, usage=wgpu.BufferUsage.UNIFORM | wgpu.BufferUsage.COPY_DST)
        self.atlas = device.create_texture(
            label="sae view glyph atlas",
            size=(ATLAS_SIZE, ATLAS_SIZE, 1),
            format="r8unorm",
            usage=wgpu.TextureUsage.TEXTURE_BINDING | wgpu.TextureUsage.COPY_DST,
        )
        self._atlas_version = -1
        layout = device.create_bind_group_layout(
            label="sae view",
            entries=[
                {"binding": 0, "visibility": wgpu.ShaderStage.VERTEX | wgpu.ShaderStage.FRAGMENT,
                 "buffer": {"type": "uniform"}},
                {"binding": 1, "visibility": wgpu.ShaderStage.FRAGMENT,
                 "texture": {"sample_type": "float", "view_dimension": "2d"}},
            ],
        )
        self.bind_group = device.create_bind_group(
            label="sae view",
            layout=layout,
            entries=[
                {"binding": 0, "resource": {"buffer": self.uniform, "offset": 0, "size": 16}},
                {"binding": 1, "resource": self.atlas.create_view()},
            ],
        )
        pipeline_layout = device.create_pipeline_layout(label="sae view", bind_group_layouts=[layout])
        blend = {
            "color": {"src_factor": "src-alpha", "dst_factor": "one-minus-src-alpha", "operation": "add"},
            "alpha": {"src_factor": "one", "dst_factor": "one-minus-src-alpha", "operation": "add"},
        }

        def pipeline(name: str, floats: int):
            attributes = [
                {"format": "float32x4", "offset": 16 * i, "shader_location": i} for i in range(floats // 4)
            ]
            return device.create_render_pipeline(
                label=f"sae view {name}",
                layout=pipeline_layout,
                vertex={
                    "module": module,
                    "entry_point": f"{name}_vertex",
                    "buffers": [{"array_stride": 4 * floats, "step_mode": "instance", "attributes": attributes}],
                },
                primitive={"topology": "triangle-list"},
                fragment={
                    "module": module,
                    "entry_point": f"{name}_fragment",
                    "targets": [{"format": target_format, "blend": blend}],
                },
            )

        self.pipelines = {"rect": pipeline("rect", RECT_FLOATS), "glyph": pipeline("glyph", GLYPH_FLOATS)}
        self._buffers: dict[tuple[str, int], object] = {}

    def _instances(self, kind: str, layer: int, data: np.ndarray):
        """A vertex buffer holding ``data``, reused while it is big enough."""
        import wgpu

        key = (kind, layer)
        buf = self._buffers.get(key)
        if buf is None or buf.size < data.nbytes:
            size = max(4096, 1 << int(data.nbytes - 1).bit_length())
            buf = self.device.create_buffer(
                label=f"sae view {kind} {layer}", size=size, usage=wgpu.BufferUsage.VERTEX | wgpu.BufferUsage.COPY_DST
            )
            self._buffers[key] = buf
        self.device.queue.write_buffer(buf, 0, data)
        return buf

    def encode(self, scene: Scene, view, encoder) -> None:
        """Record the drawing of ``scene`` into texture ``view`` on ``encoder``."""
        atlas = scene.atlas
        if atlas.version != self._atlas_version:
            self.device.queue.write_texture(
                {"texture": self.atlas}, atlas.pixels, {"bytes_per_row": ATLAS_SIZE, "rows_per_image": ATLAS_SIZE},
                (ATLAS_SIZE, ATLAS_SIZE, 1),
            )
            self._atlas_version = atlas.version
        self.device.queue.write_buffer(
            self.uniform, 0, np.array([scene.width, scene.height, ATLAS_SIZE, ATLAS_SIZE], dtype=np.float32)
        )
        draws = []
        for layer in range(len(scene.layers)):
            for kind, data in (("rect", scene.rect_array(layer)), ("glyph", scene.glyph_array(layer))):
                if len(data):
                    draws.append((kind, self._instances(kind, layer, data), len(data)))
        r, g, b, a = scene.background
        rp = encoder.begin_render_pass(
            color_attachments=[{"view": view, "clear_value": (r, g, b, a), "load_op": "clear", "store_op": "store"}]
        )
        rp.set_bind_group(0, self.bind_group)
        for kind, buf, count in draws:
            rp.set_pipeline(self.pipelines[kind])
            rp.set_vertex_buffer(0, buf)
            rp.draw(6, count)
        rp.end()

    def render_offscreen(self, scene: Scene) -> np.ndarray:
        """Draw ``scene`` into a new texture and return its pixels, ``(h, w, 3)`` uint8 RGB."""
        import wgpu

        texture = self.device.create_texture(
            label="sae view offscreen",
            size=(scene.width, scene.height, 1),
            format=self.format,
            usage=wgpu.TextureUsage.RENDER_ATTACHMENT | wgpu.TextureUsage.COPY_SRC,
        )
        encoder = self.device.create_command_encoder(label="sae view offscreen")
        self.encode(scene, texture.create_view(), encoder)
        return read_texture(self.device, texture, encoder)


def read_texture(device, texture, encoder=None) -> np.ndarray:
    """Pixels of a rendered 8-bit RGBA or BGRA texture as ``(h, w, 3)`` RGB (submits ``encoder``)."""
    import wgpu

    w, h = texture.size[0], texture.size[1]
    row = (w * 4 + 255) // 256 * 256
    buf = device.create_buffer(label="sae view readback", size=row * h, usage=wgpu.BufferUsage.COPY_DST | wgpu.BufferUsage.MAP_READ)
    encoder = encoder or device.create_command_encoder(label="sae view readback")
    encoder.copy_texture_to_buffer(
        {"texture": texture}, {"buffer": buf, "bytes_per_row": row, "rows_per_image": h}, (w, h, 1)
    )
    device.queue.submit([encoder.finish()])
    buf.map_sync(wgpu.MapMode.READ)
    pixels = np.frombuffer(buf.read_mapped(), dtype=np.uint8).reshape(h, row)[:, : w * 4].reshape(h, w, 4)
    buf.unmap()
    order = [2, 1, 0] if str(texture.format).startswith("bgra") else [0, 1, 2]
    return np.ascontiguousarray(pixels[..., order])


def save_png(pixels: np.ndarray, out: str | Path) -> None:
    """Write ``(h, w, 3)`` uint8 pixels as a PNG, atomically (see :func:`sae.io.write_atomically`)."""
    from PIL import Image

    image = Image.fromarray(pixels, "RGB")
    write_atomically(out, lambda tmp: image.save(tmp, format="PNG", optimize=True))


def load_png(path: str | Path) -> np.ndarray:
    """``(h, w, 3)`` uint8 RGB pixels of a PNG file."""
    from PIL import Image

    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))
