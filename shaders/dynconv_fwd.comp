// dynconv_fwd.comp — the causal conv's forward (out, Ttot x C); dynamic conv, per-token kernels kern (Ttot, C, 4).
// The body is in shortconv_common.glsl; the vec4 variant needs C % 4 == 0.
//! variant vec4 -DVEC4=1
#version 450
#extension GL_GOOGLE_include_directive : require
#define CONV_FWD 1
#define DYN 1
#include "shortconv_common.glsl"
