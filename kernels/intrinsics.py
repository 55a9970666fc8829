"""The LLVM primitives of the engine, each a plain Python function (its NumPy twin, which runs
when ``NUMBA_DISABLE_JIT=1``) plus an ``@overload`` that compiled callers use instead.

* ``typed(value, like)``: a constant in the dtype of ``like`` (numba would promote a bare float
  literal mixed with float32 values to float64);
* ``fma(a, b, c)``: ``a * b + c``, one fused multiply-add where the CPU has one;
* ``pow2(n, like)``: ``2**n`` built from its exponent bits (vectorises, unlike ``ldexp``);
* ``gather_all``: a sparse vector times the rows of a matrix, ``z += sum_t x_t W[k_t, :]``,
  up to 8 accumulator registers of 16 lanes live across the nonzeros;
* ``scatter_all``: an outer product added to the rows of a matrix, ``G[k_t, :] += x_t d``;
* ``prefetch(arr, i)``: a cache hint.

The row products are written in LLVM IR because numba's own loops over these short rows either
kept negative-index checks or hit run-time alias checks. Their accumulation order is fixed by
the number of 16-lane chunks ``nch`` of the row, i.e. by the one network's own hidden size.
"""

import numpy as np
from llvmlite import binding as llvm_binding
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic, overload

from .flags import LANES
from .flags import OVERLOAD_OPTIONS as _OVERLOAD_OPTIONS

_I32 = ir.IntType(32)
_I64 = ir.IntType(64)
_MAX_GROUP = 8  # accumulator registers per row pass (8 x 16 lanes = 128 hidden units)
_HOST_FMA = bool(llvm_binding.get_host_cpu_features().get("fma", False))

def typed(value, like):
    """``value`` as a scalar of the dtype of ``like`` (an array or a scalar)."""
    return np.asarray(like).dtype.type(value)


@overload(typed, jit_options=_OVERLOAD_OPTIONS)
def _typed_jit(value, like):
    target = like.dtype if isinstance(like, types.Array) else like

    def impl(value, like):
        return target(value)
    return impl


def _vector(context, aryty):
    return ir.VectorType(context.get_data_type(aryty.dtype), LANES)


def _vname(vty):
    return f"v{vty.count}f{32 if isinstance(vty.element, ir.FloatType) else 64}"


def _call(builder, name, ret, args):
    fn = cgutils.get_or_insert_function(builder.module,
                                        ir.FunctionType(ret, [a.type for a in args]), name)
    return builder.call(fn, args)


def _data(context, builder, aryty, ary):
    return context.make_array(aryty)(context, builder, ary).data


def _load(builder, ptr, vty):
    return builder.load(builder.bitcast(ptr, vty.as_pointer()), typ=vty, align=1)


def _store(builder, value, ptr):
    builder.store(value, builder.bitcast(ptr, value.type.as_pointer())).align = 1


def _splat(builder, value, vty):
    undef = ir.Constant(vty, ir.Undefined)
    v = builder.insert_element(undef, value, _I32(0))
    return builder.shuffle_vector(v, undef, ir.Constant(ir.VectorType(_I32, vty.count),
                                                        [0] * vty.count))


def _fma_name(ty):
    # A fused multiply-add where the CPU has one (every AVX2/AVX-512 x86), else LLVM's "fuse if
    # profitable": either way the choice is fixed per machine, not per compilation context.
    suffix = _vname(ty) if isinstance(ty, ir.VectorType) else (
        "f32" if isinstance(ty, ir.FloatType) else "f64")
    return f"llvm.{'fma' if _HOST_FMA else 'fmuladd'}.{suffix}"


def _fma(builder, a, b, c):
    return _call(builder, _fma_name(a.type), a.type, [a, b, c])


def fma(a, b, c):
    """``a * b + c`` (compiled: one fused multiply-add where the CPU has it)."""
    return a * b + c


@intrinsic
def _fma_scalar(typingctx, a, b, c):
    if not (isinstance(a, types.Float) and a == b == c):
        return None

    def codegen(context, builder, sig, args):
        return _call(builder, _fma_name(args[0].type), args[0].type, list(args))
    return a(a, b, c), codegen


@overload(fma, jit_options=_OVERLOAD_OPTIONS)
def _fma_jit(a, b, c):
    return lambda a, b, c: _fma_scalar(a, b, c)


def _int64s(context, builder, sig, args, positions):
    return [context.cast(builder, args[i], sig.args[i], types.int64) for i in positions]


def _float_array(t):
    return isinstance(t, types.Array) and isinstance(t.dtype, types.Float)


def _index_array(t):
    return isinstance(t, types.Array) and t.dtype == types.int32


def pow2(n, like):
    """``2**n`` for a whole-number float ``n`` in the normal exponent range, as ``like``'s dtype."""
    return np.ldexp(typed(1.0, like), int(n))


@intrinsic
def _pow2(typingctx, n, like):
    ft = like.dtype if isinstance(like, types.Array) else like
    if not isinstance(ft, types.Float):
        return None

    def codegen(context, builder, sig, args):
        if ft == types.float32:
            itype, bias, shift, ftype = _I32, 127, 23, ir.FloatType()
        else:
            itype, bias, shift, ftype = _I64, 1023, 52, ir.DoubleType()
        bits = builder.shl(builder.add(builder.fptosi(args[0], itype), itype(bias)), itype(shift))
        return builder.bitcast(bits, ftype)
    return ft(n, like), codegen


@overload(pow2, jit_options=_OVERLOAD_OPTIONS)
def _pow2_jit(n, like):
    return lambda n, like: _pow2(n, like)


def gather_all(z, zo, x, xo, idx, io, n, W, stride, col, nch):
    """``z[zo : zo + 16*nch] += sum_{t<n} x[xo + t] * W[k_t*stride + col : ... + 16*nch]`` with
    ``k_t = idx[io + t]``: a sparse vector times the rows of a matrix, ``nch`` chunks of 16."""
    m = LANES * nch
    ks = idx[io:io + n].astype(np.int64)
    rows = W[(ks * stride + col)[:, None] + np.arange(m)]
    z[zo:zo + m] += (x[xo:xo + n][:, None] * rows).sum(axis=0)


def scatter_all(G, stride, col, d, do, x, xo, idx, io, n, nch):
    """``G[k_t*stride + col : ... + 16*nch] += x[xo + t] * d[do : do + 16*nch]`` for ``t < n``,
    ``k_t = idx[io + t]`` (distinct): an outer product added to the rows of a matrix."""
    m = LANES * nch
    for t in range(n):
        start = int(idx[io + t]) * stride + col
        G[start:start + m] += x[xo + t] * d[do:do + m]


def _literal_group(g):
    return isinstance(g, types.IntegerLiteral) and 1 <= g.literal_value <= _MAX_GROUP


@intrinsic(prefer_literal=True)
def _gather_group(typingctx, z, zo, x, xo, idx, io, n, W, stride, col, group):
    if not (_float_array(z) and _float_array(x) and _float_array(W) and _index_array(idx)
            and _literal_group(group)):
        return None
    n_acc = group.literal_value
    ways = 4 if n_acc == 1 else 2 if n_acc <= 3 else 1  # independent FMA chains per chunk

    def codegen(context, builder, sig, args):
        zo, xo, io, n, stride, col = _int64s(context, builder, sig, args, (1, 3, 5, 6, 8, 9))
        vty = _vector(context, sig.args[0])
        accs = [[cgutils.alloca_once(builder, vty) for _ in range(n_acc)] for _ in range(ways)]
        for row in accs:
            for acc in row:
                builder.store(ir.Constant(vty, None), acc)
        xdata = _data(context, builder, sig.args[2], args[2])
        idata = _data(context, builder, sig.args[4], args[4])
        wdata = _data(context, builder, sig.args[7], args[7])

        def term(t, row):
            k = builder.sext(builder.load(builder.gep(idata, [builder.add(io, t)])), _I64)
            a = _splat(builder, builder.load(builder.gep(xdata, [builder.add(xo, t)])), vty)
            base = builder.add(builder.mul(k, stride), col)
            for c in range(n_acc):
                w = _load(builder, builder.gep(wdata, [builder.add(base, _I64(c * LANES))]), vty)
                builder.store(_fma(builder, a, w, builder.load(row[c])), row[c])

        rounds = builder.sdiv(n, _I64(ways))
        with cgutils.for_range(builder, rounds) as loop:
            t0 = builder.mul(loop.index, _I64(ways))
            for u in range(ways):
                term(builder.add(t0, _I64(u)), accs[u])
        if ways > 1:
            with cgutils.for_range(builder, n, start=builder.mul(rounds, _I64(ways))) as loop:
                term(loop.index, accs[0])
        zdata = _data(context, builder, sig.args[0], args[0])
        for c in range(n_acc):
            parts = [builder.load(accs[u][c]) for u in range(ways)]
            while len(parts) > 1:
                parts = [builder.fadd(parts[i], parts[i + 1]) for i in range(0, len(parts), 2)]
            ptr = builder.gep(zdata, [builder.add(zo, _I64(c * LANES))])
            _store(builder, builder.fadd(_load(builder, ptr, vty), parts[0]), ptr)
        return context.get_dummy_value()
    return types.none(z, zo, x, xo, idx, io, n, W, stride, col, group), codegen


@intrinsic(prefer_literal=True)
def _scatter_group(typingctx, G, stride, col, d, do, x, xo, idx, io, n, group):
    if not (_float_array(G) and _float_array(d) and _float_array(x) and _index_array(idx)
            and _literal_group(group)):
        return None
    n_acc = group.literal_value

    def codegen(context, builder, sig, args):
        stride, col, do, xo, io, n = _int64s(context, builder, sig, args, (1, 2, 4, 6, 8, 9))
        vty = _vector(context, sig.args[0])
        ddata = _data(context, builder, sig.args[3], args[3])
        dvs = [_load(builder, builder.gep(ddata, [builder.add(do, _I64(c * LANES))]), vty)
               for c in range(n_acc)]
        gdata = _data(context, builder, sig.args[0], args[0])
        xdata = _data(context, builder, sig.args[5], args[5])
        idata = _data(context, builder, sig.args[7], args[7])
        # One term at a time: issuing several terms' loads before their stores was measured
        # slower (the store-to-load traffic of a row is what bounds this loop).
        with cgutils.for_range(builder, n) as loop:
            t = loop.index
            k = builder.sext(builder.load(builder.gep(idata, [builder.add(io, t)])), _I64)
            a = _splat(builder, builder.load(builder.gep(xdata, [builder.add(xo, t)])), vty)
            base = builder.add(builder.mul(k, stride), col)
            for c in range(n_acc):
                ptr = builder.gep(gdata, [builder.add(base, _I64(c * LANES))])
                _store(builder, _fma(builder, a, dvs[c], _load(builder, ptr, vty)), ptr)
        return context.get_dummy_value()
    return types.none(G, stride, col, d, do, x, xo, idx, io, n, group), codegen



@overload(gather_all, jit_options=_OVERLOAD_OPTIONS)
def _gather_all_jit(z, zo, x, xo, idx, io, n, W, stride, col, nch):
    def impl(z, zo, x, xo, idx, io, n, W, stride, col, nch):
        c = 0
        while c < nch:  # literal group sizes: each one fully unrolled register kernel
            o = c * LANES
            left = nch - c
            if left >= 8:
                _gather_group(z, zo + o, x, xo, idx, io, n, W, stride, col + o, 8)
            elif left == 7:
                _gather_group(z, zo + o, x, xo, idx, io, n, W, stride, col + o, 7)
            elif left == 6:
                _gather_group(z, zo + o, x, xo, idx, io, n, W, stride, col + o, 6)
            elif left == 5:
                _gather_group(z, zo + o, x, xo, idx, io, n, W, stride, col + o, 5)
            elif left == 4:
                _gather_group(z, zo + o, x, xo, idx, io, n, W, stride, col + o, 4)
            elif left == 3:
                _gather_group(z, zo + o, x, xo, idx, io, n, W, stride, col + o, 3)
            elif left == 2:
                _gather_group(z, zo + o, x, xo, idx, io, n, W, stride, col + o, 2)
            else:
                _gather_group(z, zo + o, x, xo, idx, io, n, W, stride, col + o, 1)
            c += min(left, 8)
    return impl


@overload(scatter_all, jit_options=_OVERLOAD_OPTIONS)
def _scatter_all_jit(G, stride, col, d, do, x, xo, idx, io, n, nch):
    def impl(G, stride, col, d, do, x, xo, idx, io, n, nch):
        for c in range(nch):
            o = c * LANES
            _scatter_group(G, stride, col + o, d, do + o, x, xo, idx, io, n, 1)
    return impl


def prefetch(arr, index):
    """Hint that ``arr[index]`` is read soon (nothing to do in Python)."""


@intrinsic
def _prefetch(typingctx, arr, index):
    if not isinstance(arr, types.Array):
        return None

    def codegen(context, builder, sig, args):
        (i,) = _int64s(context, builder, sig, args, (1,))
        ptr = builder.gep(_data(context, builder, sig.args[0], args[0]), [i])
        i8p = ir.IntType(8).as_pointer()
        _call(builder, "llvm.prefetch.p0", ir.VoidType(),
              [builder.bitcast(ptr, i8p), _I32(0), _I32(3), _I32(1)])
        return context.get_dummy_value()
    return types.none(arr, index), codegen


@overload(prefetch, jit_options=_OVERLOAD_OPTIONS)
def _prefetch_jit(arr, index):
    return lambda arr, index: _prefetch(arr, index)

