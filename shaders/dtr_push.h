/* dtr_push.h — every kernel's push-constant layout, shared by C (host/) and GLSL
 * (shaders/). One family per file below; this header gathers them. */
#ifndef DTR_PUSH_H
#define DTR_PUSH_H
#include "push_common.h"
#include "push_matmul.h"
#include "push_attention.h"
#include "push_ops.h"
#include "push_axpy.h"
#include "push_gla.h"
#include "push_gdn.h"
#include "push_conv.h"
#endif
