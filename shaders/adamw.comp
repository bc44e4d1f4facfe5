/* adamw.comp — one AdamW step on n parameters (PyTorch's AdamW):
 *   g = grad * c,  c = min(1, clip / sqrt(gnorm2)) when clipping, else 1
 *   m = b1 m + (1 - b1) g,   v = b2 v + (1 - b2) g^2
 *   param -= lr * (m / bc1 / (sqrt(v / bc2) + eps) + weight_decay * param)
 * with bc = 1 - beta^step. Reading gnorm2 here (not on the host) keeps a training
 * step free of a device-to-host sync. When there is no gnorm2 the host binds grad
 * in its place and has_gnorm2 is 0. */
#version 450
#extension GL_GOOGLE_include_directive : require
#include "dtr_push.h"
#define WG 256u
layout(local_size_x = 256) in;
layout(push_constant) uniform PC { dtr_pc_adamw p; };
layout(std430, binding = 0) buffer Param { float param[]; };            // (n)
layout(std430, binding = 1) readonly buffer Grad { float grad[]; };     // (n)
layout(std430, binding = 2) buffer M { float m[]; };                    // (n)
layout(std430, binding = 3) buffer V { float v[]; };                    // (n)
layout(std430, binding = 4) readonly buffer Gnorm2 { float gnorm2[]; }; // (1)

void main() {
  float c = 1.0;
  if (p.has_gnorm2 != 0u && p.clip > 0.0) {
    float gn = sqrt(gnorm2[0]);
    if (gn > p.clip) c = p.clip / gn;
  }
  for (uint e = gl_GlobalInvocationID.x; e < p.n; e += gl_NumWorkGroups.x * WG) {
    float g = grad[e] * c;
    float mm = p.beta1 * m[e] + (1.0 - p.beta1) * g;
    float vv = p.beta2 * v[e] + (1.0 - p.beta2) * g * g;
    m[e] = mm;
    v[e] = vv;
    float w = param[e];
    param[e] = w - p.lr * (mm / p.bc1 / (sqrt(vv / p.bc2) + p.eps) + p.weight_decay * w);
  }
}
