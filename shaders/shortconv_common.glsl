/* shortconv_common.glsl — the body of every causal-conv kernel, included by
 * shortconv_{fwd,bwd,decode,cache}.comp and dynconv_{fwd,bwd,decode}.comp, which
 * choose the kernel with one of CONV_FWD, CONV_BWD, CONV_DECODE, CONV_CACHE and
 * the taps with DYN (0: static w (C, 4), 1: per-token kern (Ttot, C, 4)).
 *
 *   y_t[c] = sum_{i<4} k_t[c][i] x_{t-3+i}[c],  out = silu(y) or y,
 * per sequence of the packed varlen batch (offsets (B+1)); inputs before a
 * sequence's first token come from cache_in (B, 3, C) (row 3 + pos - start) or
 * are zero. offsets must be non-decreasing from 0 to Ttot.
 *
 * Layout for lavapipe: an invocation owns one channel, or four with VEC4 (the
 * "vec4" variants, C % 4 == 0: activations move as vec4, which on lavapipe costs
 * about what one float costs), and walks a run of tokens keeping the 3 previous
 * inputs in registers, so each input is loaded once. Neighbouring invocations
 * own neighbouring channels. A channel's 4 taps are one vec4 of w / kern; with
 * VEC4 the 4 channels' taps are transposed so that tap i of all four is one VT. */
#extension GL_GOOGLE_include_directive : require
#include "dtr_push.h"
layout(push_constant) uniform PC { dtr_pc_conv p; };

#ifndef DYN
#define DYN 0
#endif
#ifndef VEC4
#define VEC4 0
#endif
#if VEC4
#define VT vec4
#define VW 4u             /* channels per invocation */
#define NC (p.C >> 2)     /* VTs per token row */
#else
#define VT float
#define VW 1u
#define NC p.C
#endif

#if defined(CONV_FWD)
layout(constant_id = 0) const uint WG = 64;
layout(constant_id = 1) const uint TB = 16; /* tokens per invocation */
layout(local_size_x_id = 0) in;
layout(std430, binding = 0) writeonly buffer Out { VT out_[]; };     // (Ttot, C)
layout(std430, binding = 1) readonly buffer X { VT x_[]; };          // (Ttot, C)
layout(std430, binding = 2) readonly buffer Tap { vec4 taps[]; };    // w (C, 4) | kern (Ttot, C, 4)
layout(std430, binding = 3) readonly buffer Cin { VT cache_in[]; };  // (B, 3, C)
layout(std430, binding = 4) readonly buffer Off { int offsets[]; };  // (B+1)
#elif defined(CONV_BWD)
#if DYN
layout(constant_id = 0) const uint WG = 64;
layout(constant_id = 1) const uint TB = 32;
layout(local_size_x_id = 0) in;
#else
/* A workgroup owns COLS channel groups over all tokens, split into SLICES runs. */
#define COLS 32u
#define SLICES 8u
layout(local_size_x = 32, local_size_y = 8) in;
#endif
layout(std430, binding = 0) writeonly buffer Dx { VT dx[]; };        // (Ttot, C)
#if DYN
layout(std430, binding = 1) writeonly buffer Dk { vec4 dkern[]; };   // (Ttot, C, 4)
#else
layout(std430, binding = 1) buffer Dw { vec4 dw[]; };                // (C, 4), accumulated
#endif
layout(std430, binding = 2) readonly buffer Dout { VT dout[]; };     // (Ttot, C)
layout(std430, binding = 3) readonly buffer X { VT x_[]; };          // (Ttot, C)
layout(std430, binding = 4) readonly buffer Tap { vec4 taps[]; };    // w (C, 4) | kern (Ttot, C, 4)
layout(std430, binding = 5) readonly buffer Cin { VT cache_in[]; };  // (B, 3, C)
layout(std430, binding = 6) readonly buffer Off { int offsets[]; };  // (B+1)
#elif defined(CONV_DECODE)
layout(constant_id = 0) const uint WG = 64;
layout(local_size_x_id = 0) in;
layout(std430, binding = 0) writeonly buffer Out { VT out_[]; };     // (B, C)
layout(std430, binding = 1) buffer Cache { VT cache[]; };            // (B, 3, C), rolled
layout(std430, binding = 2) readonly buffer X { VT x_[]; };          // (B, C)
layout(std430, binding = 3) readonly buffer Tap { vec4 taps[]; };    // w (C, 4) | kern (B, C, 4)
#elif defined(CONV_CACHE)
layout(constant_id = 0) const uint WG = 64;
layout(local_size_x_id = 0) in;
layout(std430, binding = 0) writeonly buffer Cout { VT cache_out[]; }; // (B, 3, C)
layout(std430, binding = 1) readonly buffer X { VT x_[]; };            // (Ttot, C)
layout(std430, binding = 2) readonly buffer Cin { VT cache_in[]; };    // (B, 3, C), may alias
layout(std430, binding = 3) readonly buffer Off { int offsets[]; };    // (B+1)
#else
#error "define one of CONV_FWD, CONV_BWD, CONV_DECODE, CONV_CACHE"
#endif

/* The 4 taps of the channel group cv for token t (its row in the packed batch,
 * or its sequence in decode): k[i] multiplies x_{t-3+i}. */
struct taps4 { VT k0, k1, k2, k3; };
#if !defined(CONV_CACHE)
taps4 load_taps(uint t, uint cv) {
#if DYN
  uint i = (t * NC + cv) * VW;
#else
  uint i = cv * VW;
#endif
#if VEC4
  /* Rows of the transpose: tap j of the four channels. */
  mat4 m = transpose(mat4(taps[i], taps[i + 1u], taps[i + 2u], taps[i + 3u]));
  return taps4(m[0], m[1], m[2], m[3]);
#else
  vec4 a = taps[i];
  return taps4(a.x, a.y, a.z, a.w);
#endif
}
VT conv4(taps4 k, VT h0, VT h1, VT h2, VT xt) { return k.k0 * h0 + k.k1 * h1 + k.k2 * h2 + k.k3 * xt; }
#endif

VT silu_(VT y) { return y / (1.0 + exp(-y)); }

#if !defined(CONV_DECODE)
/* The input at absolute position pos for sequence b starting at s. */
VT hist(int pos, int s, uint b, uint cv) {
  if (pos >= s) return x_[uint(pos) * NC + cv];
  if (p.has_cache == 0u) return VT(0.0);
  return cache_in[(b * 3u + uint(3 + pos - s)) * NC + cv];
}

/* The sequence holding token t: the last b with offsets[b] <= t (skips empty ones). */
uint seq_of(uint t) {
  uint lo = 0u, hi = p.B;
  while (hi - lo > 1u) {
    uint mid = (lo + hi) >> 1;
    if (uint(offsets[mid]) <= t) lo = mid; else hi = mid;
  }
  return lo;
}

/* The run of tokens of this workgroup row: runs beyond 65535 groups go to z. */
#define RUN_INDEX (gl_WorkGroupID.z * gl_NumWorkGroups.y + gl_WorkGroupID.y)
#endif

#if defined(CONV_FWD)
void main() {
  uint cv = gl_GlobalInvocationID.x;
  uint t0 = RUN_INDEX * TB;
  if (cv >= NC || t0 >= p.Ttot) return;
  uint t1 = min(t0 + TB, p.Ttot);
  uint b = seq_of(t0);
  int s = offsets[b];
  uint e = uint(offsets[b + 1u]);
  int it0 = int(t0);
  VT h0 = hist(it0 - 3, s, b, cv), h1 = hist(it0 - 2, s, b, cv), h2 = hist(it0 - 1, s, b, cv);
#if !DYN
  taps4 k = load_taps(0u, cv);
#endif
  for (uint t = t0; t < t1; ++t) {
    if (t >= e) { /* the next non-empty sequence starts at t: fresh history */
      do { ++b; } while (b + 1u < p.B && uint(offsets[b + 1u]) <= t);
      s = offsets[b];
      e = uint(offsets[b + 1u]);
      h0 = hist(s - 3, s, b, cv); h1 = hist(s - 2, s, b, cv); h2 = hist(s - 1, s, b, cv);
    }
#if DYN
    taps4 k = load_taps(t, cv);
#endif
    VT xt = x_[t * NC + cv];
    VT y = conv4(k, h0, h1, h2, xt);
    out_[t * NC + cv] = p.silu != 0u ? silu_(y) : y;
    h0 = h1; h1 = h2; h2 = xt;
  }
}
#endif

#if defined(CONV_BWD)
/* Backward over the run [t0, t1) of channel group cv. With dy_u = dout_u f'(y_u)
 * (f' = silu'(y) = sg (1 + y (1 - sg)), or 1), the forward y_u = sum_i k_u[i]
 * x_{u-3+i} gives
 *   dx_t    = sum_i k_{t+3-i}[i] dy_{t+3-i}   (terms inside t's sequence only),
 *   dk_u[i] = dy_u x_{u-3+i}                   (dw = sum over u of dk_u).
 * The walk goes forward over u = t0 .. t1+2, recomputing y_u from the register
 * window of inputs, and scatters dy_u into four register accumulators a0..a3
 * (tokens u-3 .. u); after step u nothing more reaches token u-3, so its dx is
 * final and stored. The 3 look-ahead tokens past t1 give the run's last tokens
 * their contributions from the next tokens of the same sequence. Taps reaching
 * before a sequence's start hit the cache, whose gradient is not asked for.
 * Returns sum_u dk_u over the run as taps4 (static conv). */
taps4 conv_bwd_run(uint cv, uint t0, uint t1) {
  taps4 dk = taps4(VT(0.0), VT(0.0), VT(0.0), VT(0.0));
  uint b = seq_of(t0);
  int s = offsets[b];
  uint e = uint(offsets[b + 1u]);
  int it0 = int(t0);
  VT h0 = hist(it0 - 3, s, b, cv), h1 = hist(it0 - 2, s, b, cv), h2 = hist(it0 - 1, s, b, cv);
  VT a0 = VT(0.0), a1 = VT(0.0), a2 = VT(0.0), a3 = VT(0.0);
#if !DYN
  taps4 k = load_taps(0u, cv);
#endif
  uint uend = min(t1 + 3u, p.Ttot);
  for (uint u = t0; u < t1 + 3u; ++u) {
    if (u < uend) {
      if (u >= e) {
        do { ++b; } while (b + 1u < p.B && uint(offsets[b + 1u]) <= u);
        s = offsets[b];
        e = uint(offsets[b + 1u]);
        h0 = hist(s - 3, s, b, cv); h1 = hist(s - 2, s, b, cv); h2 = hist(s - 1, s, b, cv);
      }
#if DYN
      taps4 k = load_taps(u, cv);
#endif
      VT xu = x_[u * NC + cv];
      VT y = conv4(k, h0, h1, h2, xu);
      VT dy = dout[u * NC + cv];
      if (p.silu != 0u) {
        VT sg = 1.0 / (1.0 + exp(-y));
        dy *= sg * (1.0 + y * (1.0 - sg));
      }
      if (u < t1) {
#if DYN
        if (p.has_dw != 0u) {
          uint i = (u * NC + cv) * VW;
#if VEC4
          mat4 m = transpose(mat4(dy * h0, dy * h1, dy * h2, dy * xu));
          dkern[i] = m[0]; dkern[i + 1u] = m[1]; dkern[i + 2u] = m[2]; dkern[i + 3u] = m[3];
#else
          dkern[i] = dy * vec4(h0, h1, h2, xu);
#endif
        }
#else
        dk.k0 += dy * h0; dk.k1 += dy * h1; dk.k2 += dy * h2; dk.k3 += dy * xu;
#endif
      }
      int rel = int(u) - s; /* tokens of u's sequence before u */
      a3 += k.k3 * dy;
      if (rel >= 1) a2 += k.k2 * dy;
      if (rel >= 2) a1 += k.k1 * dy;
      if (rel >= 3) a0 += k.k0 * dy;
      h0 = h1; h1 = h2; h2 = xu;
    }
    if (u >= t0 + 3u && p.has_dx != 0u) dx[(u - 3u) * NC + cv] = a0;
    a0 = a1; a1 = a2; a2 = a3; a3 = VT(0.0);
  }
  return dk;
}

#if DYN
void main() {
  uint cv = gl_GlobalInvocationID.x;
  uint t0 = RUN_INDEX * TB;
  if (cv >= NC || t0 >= p.Ttot) return;
  conv_bwd_run(cv, t0, min(t0 + TB, p.Ttot));
}
#else
/* dw without atomics: slice ly of the workgroup walks tokens
 * [Ttot ly / SLICES, Ttot (ly+1) / SLICES); slice 0 then adds the SLICES partial
 * sums in a fixed order, so the bits depend only on the shapes. */
shared taps4 part[SLICES][COLS];
void main() {
  uint lx = gl_LocalInvocationID.x, ly = gl_LocalInvocationID.y;
  uint cv = gl_WorkGroupID.x * COLS + lx;
  /* floor(Ttot ly / SLICES) without overflowing 32 bits */
  uint q = p.Ttot / SLICES, r = p.Ttot % SLICES;
  uint t0 = q * ly + (r * ly) / SLICES, t1 = q * (ly + 1u) + (r * (ly + 1u)) / SLICES;
  taps4 acc = taps4(VT(0.0), VT(0.0), VT(0.0), VT(0.0));
  if (cv < NC && t0 < t1) acc = conv_bwd_run(cv, t0, t1);
  part[ly][lx] = acc;
  barrier();
  if (ly == 0u && cv < NC && p.has_dw != 0u) {
    taps4 sum = part[0][lx];
    for (uint j = 1u; j < SLICES; ++j) {
      taps4 o = part[j][lx];
      sum.k0 += o.k0; sum.k1 += o.k1; sum.k2 += o.k2; sum.k3 += o.k3;
    }
#if VEC4
    mat4 m = transpose(mat4(sum.k0, sum.k1, sum.k2, sum.k3));
    uint i = cv * 4u;
    dw[i] += m[0]; dw[i + 1u] += m[1]; dw[i + 2u] += m[2]; dw[i + 3u] += m[3];
#else
    dw[cv] += vec4(sum.k0, sum.k1, sum.k2, sum.k3);
#endif
  }
}
#endif
#endif

#if defined(CONV_DECODE)
/* One token per sequence b: y = k . (cache rows 0..2, x), then the cache rolls
 * by one. Each invocation reads its (b, cv) cache column before writing it. */
void main() {
  uint i = (gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x) * WG +
           gl_LocalInvocationID.x;
  if (i >= p.B * NC) return;
  uint b = i / NC, cv = i - b * NC;
  uint r = b * 3u * NC + cv;
  VT h0 = cache[r], h1 = cache[r + NC], h2 = cache[r + 2u * NC], xt = x_[i];
  VT y = conv4(load_taps(b, cv), h0, h1, h2, xt);
  out_[i] = p.silu != 0u ? silu_(y) : y;
  cache[r] = h1;
  cache[r + NC] = h2;
  cache[r + 2u * NC] = xt;
}
#endif

#if defined(CONV_CACHE)
/* cache_out[b] = the inputs at positions end-3 .. end-1 of sequence b; for a
 * sequence shorter than 3 the older rows come from cache_in (or zero). All
 * three are read before any is written, so cache_out may alias cache_in. */
void main() {
  uint i = (gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x) * WG +
           gl_LocalInvocationID.x;
  if (i >= p.B * NC) return;
  uint b = i / NC, cv = i - b * NC;
  int s = offsets[b], e = offsets[b + 1u];
  VT v0 = hist(e - 3, s, b, cv), v1 = hist(e - 2, s, b, cv), v2 = hist(e - 1, s, b, cv);
  uint r = b * 3u * NC + cv;
  cache_out[r] = v0;
  cache_out[r + NC] = v1;
  cache_out[r + 2u * NC] = v2;
}
#endif
