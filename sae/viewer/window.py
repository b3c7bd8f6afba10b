"""The viewer in a glfw window (through rendercanvas, drawn by wgpu), and scripted runs of it.

``--keys`` inputs are submitted to the canvas as the events a keyboard or mouse
would send, so a scripted run goes through the same event handling as a person;
``--screenshot`` reads back the window's own texture after the frame that follows
the last of them, saves it, and closes the window.
"""

from __future__ import annotations

from pathlib import Path

from sae.viewer import require

require("glfw", "rendercanvas")

from sae.viewer.app import Viewer  # noqa: E402
from sae.viewer.session import Session  # noqa: E402
from sae.viewer.state import ScriptedInput  # noqa: E402

#: rendercanvas key names of the viewer's named keys (single characters come as "char" events).
CANVAS_KEYS = {
    "ArrowRight": "right",
    "ArrowLeft": "left",
    "ArrowUp": "up",
    "ArrowDown": "down",
    "Home": "home",
    "End": "end",
    " ": "space",
    "Tab": "tab",
    "Escape": "escape",
    "Backspace": "backspace",
    "PageUp": "pageup",
    "PageDown": "pagedown",
}
_NAME_TO_CANVAS = {v: k for k, v in CANVAS_KEYS.items()}


def canvas_event(inp: ScriptedInput, pixel_ratio: float) -> dict:
    """The rendercanvas event a keyboard or mouse would send for ``inp``."""
    if inp.kind == "click":
        return {"event_type": "pointer_down", "x": inp.x / pixel_ratio, "y": inp.y / pixel_ratio, "button": 1,
                "buttons": (1,), "modifiers": (), "ntouches": 0, "touches": {}, "scripted": True}
    if inp.kind == "wheel":
        return {"event_type": "wheel", "dx": inp.x, "dy": inp.y, "x": 0, "y": 0, "buttons": (), "modifiers": (),
                "scripted": True}
    if inp.name in _NAME_TO_CANVAS:
        return {"event_type": "key_down", "key": _NAME_TO_CANVAS[inp.name], "modifiers": (), "scripted": True}
    return {"event_type": "char", "data": inp.name, "modifiers": (), "scripted": True}


def _start_glfw() -> None:
    """Start glfw, or fail with one line when there is no display to open a window on."""
    import glfw

    from sae.errors import InputError

    reporting = glfw.ERROR_REPORTING
    glfw.ERROR_REPORTING = "raise"
    try:
        started = glfw.init()
    except glfw.GLFWError as exc:
        # glfw words it "(code) b'description'"
        why = str(exc).split(" ", 1)[-1].removeprefix("b'").removesuffix("'")
        raise InputError(f"cannot open a window: {why}; draw offscreen with --png OUT.png instead") from None
    finally:
        glfw.ERROR_REPORTING = reporting
    if not started:
        raise InputError("cannot open a window (glfw did not start); draw offscreen with --png OUT.png instead")


def run_window(session: Session, size: tuple[int, int], inputs: list[ScriptedInput] = (),
               screenshot: str | Path | None = None) -> int:
    """Open the viewer window; returns when it is closed (or after ``screenshot`` is saved)."""
    _start_glfw()
    from rendercanvas.glfw import RenderCanvas, loop

    from sae.viewer.render import Renderer, read_texture, request_device, save_png

    canvas = RenderCanvas(size=size, title="sae view", update_mode="ondemand", max_fps=120, vsync=False)
    ratio = canvas.get_pixel_ratio()
    viewer = Viewer(session, scale=ratio)
    adapter, device = request_device()
    context = canvas.get_wgpu_context()
    target = context.get_preferred_format(adapter).replace("-srgb", "")  # shaders write sRGB values as they are
    context.configure(device=device, format=target, usage="RENDER_ATTACHMENT|COPY_SRC")
    renderer = Renderer(device, target)
    script = list(inputs)
    progress = {"submitted": not script, "handled": 0, "saved": False}

    def close_soon() -> None:
        loop.call_soon(canvas.close)

    def handle(event: dict) -> None:
        kind = event["event_type"]
        if kind == "key_down" and event["key"] in CANVAS_KEYS:
            viewer.key(CANVAS_KEYS[event["key"]])
        elif kind == "char" and event.get("data", "").strip():
            viewer.key(event["data"])
        elif kind == "pointer_down":
            viewer.click(event["x"] * ratio, event["y"] * ratio)
        elif kind == "wheel":
            viewer.wheel(event["dx"], event["dy"], tuple(event.get("modifiers", ())))
        else:
            return
        if event.get("scripted"):
            progress["handled"] += 1
        if viewer.state.quit:
            close_soon()
        canvas.request_draw()

    def draw() -> None:
        width, height = canvas.get_physical_size()
        scene = viewer.frame(width, height)
        texture = context.get_current_texture()
        encoder = device.create_command_encoder(label="sae view frame")
        renderer.encode(scene, texture.create_view(), encoder)
        if not progress["submitted"]:  # the window is up: now play the script through it
            progress["submitted"] = True
            for inp in script:
                canvas.submit_event(canvas_event(inp, ratio))
            canvas.request_draw()
        elif screenshot is not None and progress["handled"] >= len(script) and not progress["saved"]:
            save_png(read_texture(device, texture, encoder), screenshot)
            progress["saved"] = True
            close_soon()
            return
        device.queue.submit([encoder.finish()])

    canvas.add_event_handler(handle, "key_down", "char", "pointer_down", "wheel")
    canvas.request_draw(draw)
    loop.run()
    if screenshot is not None and not progress["saved"]:
        from sae.errors import SaeError

        raise SaeError("the window closed before its screenshot was taken")
    return 0
