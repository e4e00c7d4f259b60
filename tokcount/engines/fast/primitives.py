"""LLVM intrinsics the kernel modules share: one unaligned 64-bit load, a trailing-zero count,
a cache prefetch (numba has no spelling for them).

Kept apart so that every kernel module takes them from one place without importing the others.
"""

from __future__ import annotations

from llvmlite import ir
from numba.core import cgutils, types
from numba.extending import intrinsic

# ----------------------------------------------------------------------------------------------
# Machine words


@intrinsic
def load_u64(typingctx, buf, index):
    """The 8 bytes buf[index:index+8] as a little-endian uint64, in one unaligned load (the
    caller guarantees they are inside the array)."""
    if not (isinstance(buf, types.Array) and buf.ndim == 1 and buf.dtype == types.uint8 and buf.layout == "C"):
        return None  # the pointer arithmetic below assumes contiguous bytes
    sig = types.uint64(buf, index)

    def codegen(context, builder, signature, args):
        array = context.make_array(signature.args[0])(context, builder, args[0])
        at = context.cast(builder, args[1], signature.args[1], types.intp)
        pointer = builder.bitcast(builder.gep(array.data, [at]), ir.IntType(64).as_pointer())
        return builder.load(pointer, align=1)

    return sig, codegen


@intrinsic
def trailing_zeros(typingctx, value):
    """Count of trailing zero bits of a uint64 (64 for zero)."""
    if value != types.uint64:
        return None
    sig = types.uint64(value)

    def codegen(context, builder, signature, args):
        return builder.cttz(args[0], ir.Constant(ir.IntType(1), 0))

    return sig, codegen


# ----------------------------------------------------------------------------------------------
# Memory hints


@intrinsic
def prefetch_row(typingctx, table, row):
    """Hint the CPU to fetch table[row, 0] into its caches (no effect on results)."""
    if not (isinstance(table, types.Array) and table.ndim == 2):
        return None
    sig = types.void(table, row)

    def codegen(context, builder, signature, args):
        array = context.make_array(signature.args[0])(context, builder, args[0])
        at = context.cast(builder, args[1], signature.args[1], types.intp)
        zero = context.get_constant(types.intp, 0)
        pointer = cgutils.get_item_pointer(context, builder, signature.args[0], array, [at, zero])
        byte_pointer = builder.bitcast(pointer, ir.IntType(8).as_pointer())
        i32 = ir.IntType(32)
        prefetch = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(ir.VoidType(), [byte_pointer.type, i32, i32, i32]), "llvm.prefetch.p0"
        )
        builder.call(prefetch, [byte_pointer, ir.Constant(i32, 0), ir.Constant(i32, 3), ir.Constant(i32, 1)])
        return context.get_dummy_value()

    return sig, codegen
