// state_store.glsl — how a decode kernel keeps a recurrent state in memory:
// fp32 words, or (with -DS16) fp16 halves packed two to a 32-bit word by
// packHalf2x16. The packed form needs no 16-bit storage feature, so every
// Vulkan device has it; the arithmetic stays fp32 either way. The state is
// read and written two neighbouring floats at a time (i even), so a word is
// only ever touched by the invocation that owns both of its halves.
// Include after declaring nothing named St / state; binding STATE_BINDING.
#ifndef STATE_BINDING
#define STATE_BINDING 1
#endif
#ifdef S16
layout(std430, binding = STATE_BINDING) buffer St { uint state[]; };
vec2 state_ld2(uint i) { return unpackHalf2x16(state[i >> 1]); }
void state_st2(uint i, vec2 s) { state[i >> 1] = packHalf2x16(s); }
#else
layout(std430, binding = STATE_BINDING) buffer St { float state[]; };
vec2 state_ld2(uint i) { return vec2(state[i], state[i + 1u]); }
void state_st2(uint i, vec2 s) {
  state[i] = s.x;
  state[i + 1u] = s.y;
}
#endif
vec4 state_ld4(uint i) { return vec4(state_ld2(i), state_ld2(i + 2u)); }
void state_st4(uint i, vec4 s) {
  state_st2(i, s.xy);
  state_st2(i + 2u, s.zw);
}
