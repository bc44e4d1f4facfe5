/* push_axpy.h — push constants of axpy (see dtr_push.h). */
#ifndef DTR_PUSH_AXPY_H
#define DTR_PUSH_AXPY_H
#include "push_common.h"
DTR_PUSH_STRUCT(dtr_pc_axpy) {
  DTR_U32 n;
  DTR_F32 a;
};
#endif
