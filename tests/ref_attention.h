/* ref_attention.h — double-precision references of the attention kernels (see ref.h). */
#ifndef DTR_REF_ATTENTION_H
#define DTR_REF_ATTENTION_H
#include <stddef.h>
#include <stdint.h>

#endif
