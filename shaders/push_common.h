/* push_common.h — lets one struct definition serve C and GLSL.
 * Push-constant structs hold only 32-bit scalars, so std430 push-constant layout
 * and C layout agree. Include from GLSL (VULKAN is defined by glslc) or from C. */
#ifndef DTR_PUSH_COMMON_H
#define DTR_PUSH_COMMON_H
#ifdef VULKAN
#define DTR_U32 uint
#define DTR_I32 int
#define DTR_F32 float
#define DTR_PUSH_STRUCT(name) struct name
#else
#include <stdint.h>
#define DTR_U32 uint32_t
#define DTR_I32 int32_t
#define DTR_F32 float
#define DTR_PUSH_STRUCT(name) typedef struct name name; struct name
#endif
#endif
