/* ops_common.glsl — shared pieces of the ops kernels: a deterministic workgroup
 * sum (a fixed shared-memory tree, so the same inputs give the same bits) and an
 * accurate (cos, sin) for RoPE. The includer defines WG (a power of two, the
 * workgroup's x size) before including this file. */

/* Sum of v over the workgroup, returned to every invocation. Must be reached in
 * uniform control flow. */
shared float ops_red[WG];
float ops_wg_sum(float v) {
  uint t = gl_LocalInvocationID.x;
  ops_red[t] = v;
  barrier();
  for (uint s = WG / 2u; s > 0u; s >>= 1u) {
    if (t < s) ops_red[t] += ops_red[t + s];
    barrier();
  }
  float r = ops_red[0];
  barrier(); /* a following call may overwrite ops_red */
  return r;
}

/* (cos a, sin a) to a few ulp for |a| < 2^17 (beyond, accuracy degrades slowly).
 * GLSL's sin/cos promise only 2^-11 absolute error on [-pi, pi] and nothing
 * beyond it, while RoPE angles reach pos * inv_freq ~ 1e5. So: a Cody-Waite
 * reduction a - k pi/2 that needs no fused multiply-add (not every device fuses):
 * pi/2 = P1 + P2 + P3 with P1, P2 of 15 significant bits and k = kh 512 + kl
 * (kh < 2^8, kl < 2^9), so every product but the last is exact and every
 * subtraction exact or rounded once near the end; `precise` forbids reassociating
 * or fusing them. Then minimax polynomials on [-pi/4, pi/4] (Cephes' sinf/cosf
 * coefficients). */
vec2 ops_cossin(float a) {
  const float P1 = 1.57080078125;          /* pi/2 to 15 bits */
  const float P1_512 = 804.25;             /* P1 * 512, exact */
  const float P2 = -4.454515874385834e-06; /* (pi/2 - P1) to 15 bits */
  const float P2_512 = -0.002280712127685547;
  const float P3 = 6.07710062827671e-11;   /* pi/2 - P1 - P2 to 24 bits */
  float k = round(a * 0.6366197723675814);
  float kh = floor(k * (1.0 / 512.0));
  float kl = k - kh * 512.0;
  precise float r = a - kh * P1_512;
  r = r - kl * P1;
  r = r - kh * P2_512;
  r = r - kl * P2;
  r = r - k * P3;
  float z = r * r;
  float s = ((-1.9515295891e-4 * z + 8.3321608736e-3) * z - 1.6666654611e-1) * z * r + r;
  float c = ((2.443315711809948e-5 * z - 1.388731625493765e-3) * z + 4.166664568298827e-2) * z * z -
            0.5 * z + 1.0;
  int q = int(k) & 3; /* two's complement: also right for negative k */
  if (q == 0) return vec2(c, s);
  if (q == 1) return vec2(-s, c);
  if (q == 2) return vec2(-c, -s);
  return vec2(s, -c);
}
