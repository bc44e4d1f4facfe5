// qkv_load.glsl — how the chunked linear-attention kernels read q, k and v:
// fp32, or (with -DDTR_QKV_F16, their "h16" variants) fp16 halves packed two to
// a 32-bit word as dtr_op_pack_f16 writes them (element 2i in the low half of
// word i), unpacked by unpackHalf2x16. The packed form needs no 16-bit storage
// feature, so every Vulkan device has it; it halves the bytes of the q, k, v a
// block keeps for its backward. Only the storage changes: the arithmetic,
// gates, states, outputs and gradients stay fp32.
//   QKV_VEC4, QKV_LD4(a, i): element type and load of a buffer read as vec4s
//   QKV_FLOAT, QKV_LD(a, i): element type and load of a buffer read as floats
#ifdef DTR_QKV_F16
#define QKV_VEC4 uvec2
#define QKV_FLOAT uint
#define QKV_LD4(a, i) vec4(unpackHalf2x16(a[i].x), unpackHalf2x16(a[i].y))
#define QKV_LD(a, i) (unpackHalf2x16(a[(i) >> 1u])[(i) & 1u])
#else
#define QKV_VEC4 vec4
#define QKV_FLOAT float
#define QKV_LD4(a, i) a[i]
#define QKV_LD(a, i) a[i]
#endif
