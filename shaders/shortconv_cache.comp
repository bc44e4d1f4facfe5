// shortconv_cache.comp — cache_out = the last 3 inputs of each sequence (shortconv and dynconv); shared by both convs.
// The body is in shortconv_common.glsl; the vec4 variant needs C % 4 == 0.
//! variant vec4 -DVEC4=1
#version 450
#extension GL_GOOGLE_include_directive : require
#define CONV_CACHE 1
#define DYN 0
#include "shortconv_common.glsl"
