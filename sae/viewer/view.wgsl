// The viewer's two instanced quad kinds: flat rectangles with an optional border,
// and glyphs sampled from a single-channel atlas. Positions are in pixels with the
// origin at the top left; every quad carries a clip rectangle (x0, y0, x1, y1).

struct Screen {
    size: vec2<f32>,
    atlas_size: vec2<f32>,
};

@group(0) @binding(0) var<uniform> screen: Screen;
@group(0) @binding(1) var atlas: texture_2d<f32>;

fn corner(vertex: u32) -> vec2<f32> {
    // Two triangles: (0,0) (1,0) (0,1) / (0,1) (1,0) (1,1).
    let xs = array<f32, 6>(0.0, 1.0, 0.0, 0.0, 1.0, 1.0);
    let ys = array<f32, 6>(0.0, 0.0, 1.0, 1.0, 0.0, 1.0);
    return vec2<f32>(xs[vertex], ys[vertex]);
}

fn to_clip_space(pixel: vec2<f32>) -> vec4<f32> {
    let ndc = pixel / screen.size * 2.0 - 1.0;
    return vec4<f32>(ndc.x, -ndc.y, 0.0, 1.0);
}

fn outside(pixel: vec2<f32>, clip: vec4<f32>) -> bool {
    return pixel.x < clip.x || pixel.y < clip.y || pixel.x >= clip.z || pixel.y >= clip.w;
}

// -- rectangles ------------------------------------------------------------------------

struct RectIn {
    @location(0) rect: vec4<f32>,      // x, y, width, height
    @location(1) fill: vec4<f32>,      // rgba
    @location(2) border: vec4<f32>,    // rgba
    @location(3) border_width: vec4<f32>,  // x: width in pixels; yzw unused
    @location(4) clip: vec4<f32>,
};

struct RectOut {
    @builtin(position) position: vec4<f32>,
    @location(0) local: vec2<f32>,
    @location(1) size: vec2<f32>,
    @location(2) fill: vec4<f32>,
    @location(3) border: vec4<f32>,
    @location(4) border_width: f32,
    @location(5) clip: vec4<f32>,
};

@vertex
fn rect_vertex(@builtin(vertex_index) vertex: u32, inst: RectIn) -> RectOut {
    var out: RectOut;
    let c = corner(vertex);
    out.local = c * inst.rect.zw;
    out.position = to_clip_space(inst.rect.xy + out.local);
    out.size = inst.rect.zw;
    out.fill = inst.fill;
    out.border = inst.border;
    out.border_width = inst.border_width.x;
    out.clip = inst.clip;
    return out;
}

@fragment
fn rect_fragment(in: RectOut) -> @location(0) vec4<f32> {
    if outside(in.position.xy, in.clip) {
        discard;
    }
    let edge = min(min(in.local.x, in.size.x - in.local.x), min(in.local.y, in.size.y - in.local.y));
    if edge < in.border_width {
        return in.border;
    }
    return in.fill;
}

// -- glyphs ----------------------------------------------------------------------------

struct GlyphIn {
    @location(0) rect: vec4<f32>,   // x, y, width, height in pixels
    @location(1) uv: vec4<f32>,     // atlas u0, v0, u1, v1
    @location(2) color: vec4<f32>,
    @location(3) clip: vec4<f32>,
};

struct GlyphOut {
    @builtin(position) position: vec4<f32>,
    @location(0) texel: vec2<f32>,
    @location(1) color: vec4<f32>,
    @location(2) clip: vec4<f32>,
};

@vertex
fn glyph_vertex(@builtin(vertex_index) vertex: u32, inst: GlyphIn) -> GlyphOut {
    var out: GlyphOut;
    let c = corner(vertex);
    out.position = to_clip_space(inst.rect.xy + c * inst.rect.zw);
    out.texel = mix(inst.uv.xy, inst.uv.zw, c) * screen.atlas_size;
    out.color = inst.color;
    out.clip = inst.clip;
    return out;
}

@fragment
fn glyph_fragment(in: GlyphOut) -> @location(0) vec4<f32> {
    if outside(in.position.xy, in.clip) {
        discard;
    }
    // Quads sit on whole pixels and map 1:1 onto the atlas: load the texel, no filtering.
    let coverage = textureLoad(atlas, vec2<i32>(floor(in.texel)), 0).r;
    return vec4<f32>(in.color.rgb, in.color.a * coverage);
}
