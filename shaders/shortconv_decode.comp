// shortconv_decode.comp — one decode step per sequence, cache rolled in place; short conv, static weights w (C, 4).
// The body is in shortconv_common.glsl; the vec4 variant needs C % 4 == 0.
//! variant vec4 -DVEC4=1
#version 450
#extension GL_GOOGLE_include_directive : require
#define CONV_DECODE 1
#define DYN 0
#include "shortconv_common.glsl"
