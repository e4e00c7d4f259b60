"""LLVM intrinsics the kernel modules share: one unaligned 64-bit load, a trailing-zero count,
a cache prefetch, an array without reference counting (numba has no spelling for them).

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


# ----------------------------------------------------------------------------------------------
# Reference counts


def _without_meminfo(context, builder, typ, value):
    if isinstance(typ, types.Array):
        view = context.make_array(typ)(context, builder, value=value)
        view.meminfo = cgutils.get_null_value(view.meminfo.type)
        return view._getvalue()
    if isinstance(typ, types.BaseTuple):
        for i, member in enumerate(typ):
            inner = _without_meminfo(context, builder, member, builder.extract_value(value, i))
            value = builder.insert_value(value, inner, i)
    return value


@intrinsic
def borrowed(typingctx, value):
    """`value` itself, an array or a tuple (nested or not) holding arrays, with every array's
    reference count left out (a null meminfo), for the length of one kernel call whose caller
    holds them all.

    numba increfs an array passed to an inlined helper and decrefs it at each of the helper's
    exits, with an atomic instruction each; in count_documents its pruning pass leaves them in
    place (the helpers have many exits), and they took 60 % of the kernel's time. On a null
    meminfo both are a test and a branch. Only for what outlives the call: the views keep
    nothing alive.
    """
    if not isinstance(value, (types.Array, types.BaseTuple)):
        return None
    sig = value(value)

    def codegen(context, builder, signature, args):
        return _without_meminfo(context, builder, signature.args[0], args[0])

    return sig, codegen
