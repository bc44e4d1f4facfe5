// gdn_gate_common.glsl — softplus accurate to float rounding for the GDN gates.
// GLSL has no log1p, and Vulkan only bounds log()'s absolute error (2^-21) near 1,
// which is a large relative error for log(1 + small). So
//   log1p(z) = 2 atanh(w), w = z / (2 + z) in [0, 1/3] for z in [0, 1],
// by its odd series 2 (w + w^3/3 + ... + w^15/15), truncation < 3e-8 relative.
float gdn_log1p01(float z) {
  float w = z / (2.0 + z), w2 = w * w;
  float s = 1.0 / 15.0;
  s = s * w2 + 1.0 / 13.0;
  s = s * w2 + 1.0 / 11.0;
  s = s * w2 + 1.0 / 9.0;
  s = s * w2 + 1.0 / 7.0;
  s = s * w2 + 1.0 / 5.0;
  s = s * w2 + 1.0 / 3.0;
  s = s * w2 + 1.0;
  return 2.0 * w * s;
}

// softplus(x) = max(x, 0) + log1p(exp(-|x|)), never overflowing.
float gdn_softplus(float x) { return max(x, 0.0) + gdn_log1p01(exp(-abs(x))); }
