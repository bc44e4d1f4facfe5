# cmake -P embed.cmake -DIN=x.spv -DOUT=x.spv.c -DNAME=kernel
# Writes the SPIR-V words of IN as a C array dtr_spv_<NAME>.
file(READ ${IN} hex HEX)
string(LENGTH "${hex}" n)
math(EXPR words "${n} / 8")
string(REGEX REPLACE "(..)(..)(..)(..)" "0x\\4\\3\\2\\1u," body "${hex}")
string(REGEX REPLACE "((0x[0-9a-f]+u,){8})" "\\1\n" body "${body}")
file(WRITE ${OUT} "#include <stddef.h>\n#include <stdint.h>\nconst uint32_t dtr_spv_${NAME}[] = {\n${body}\n};\nconst size_t dtr_spv_${NAME}_size = ${words} * 4;\n")
