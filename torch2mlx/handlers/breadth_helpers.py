"""Breadth (issue 13): torch functions MLX can compute exactly but with no single MLX call, as local helpers.

**What it does**: a rule with `handler: breadth_helper` fills its template as usual, e.g.
`torch.quantile(x, q, dim=1)` -> `quantile(x, q, 1)`, and every helper the filled template calls (and the
helpers those call) is added to the file after the imports, once per file (the machinery of
`local_helpers.emit`). A helper reads its arguments once, so no argument is evaluated twice.

- linear algebra: `chained_matmul` (linalg.multi_dot, chain_matmul; integer arrays by sums of products, MLX's
  matmul takes floating-point arrays only), `inner` (torch.inner on integers too), `svd_reduced`
  (linalg.svd full_matrices=False), `svd_uv` (torch.svd's (U, S, V)), `tensorinv`, `tensorsolve`,
  `triangular_solve`;
- reductions: `quantile` (quantile / nanquantile, all five interpolations, torch's NaN rules);
- element-wise: `signbit`, `copysign` (the sign bit, -0.0 included), `gcd`, `lcm` (Euclid's algorithm
  unrolled over the longest run integers of the dtype can need);
- special functions, as ATen computes them (Cephes, torch/include/ATen/native/Math.h): `ndtri`, `i0`,
  `i0e`, `i1`, `i1e` (Chebyshev series), `digamma`, `hurwitz_zeta`, `polygamma`; `lgamma` (Stirling's
  series after shifting the argument past 8, reflection below 0.5) and `multigammaln`;
- indexing: `diagonal_scatter`, `unravel_index`, `scatter_reduce`.

**Exactness**: each helper follows torch's definition; the rule examples run them against torch (float32
within rtol 1e-4 / atol 1e-5) on several call shapes, NaN, signed zeros and the branch boundaries of
the series included.

**Left in place when** a helper's name is already used in the file (flagged).
"""
from __future__ import annotations

from torch2mlx.binding import bind
from torch2mlx.handlers import register
from torch2mlx.handlers.local_helpers import HELPERS as LOCAL_HELPERS
from torch2mlx.handlers.local_helpers import expand_with_helpers
from torch2mlx.template import choose_template, normalize, template_roots

import libcst as cst

HELPERS = {
    "integer_matmul": '''
def integer_matmul(a, b):
    """a @ b with torch's 1-D rules (a row vector on the left, a column on the right, dropped from the result)
    for integer arrays, as sums of products: MLX's matmul takes floating-point arrays only."""
    if mx.issubdtype(a.dtype, mx.inexact) or mx.issubdtype(b.dtype, mx.inexact):
        return a @ b
    a2 = a if a.ndim > 1 else a.reshape(1, -1)
    b2 = b if b.ndim > 1 else b.reshape(-1, 1)
    out = (mx.expand_dims(a2, -1) * mx.expand_dims(b2, -3)).sum(-2)
    if a.ndim == 1:
        out = out.squeeze(-2)
    if b.ndim == 1:
        out = out.squeeze(-1)
    return out
''',
    "chained_matmul": '''
def chained_matmul(tensors):
    """PyTorch's linalg.multi_dot / chain_matmul: the product of the matrices from left to right; a 1-D
    first (last) tensor is a row (column) vector, dropped from the result. Integer arrays too."""
    out = tensors[0]
    for t in tensors[1:]:
        out = integer_matmul(out, t)
    return out
''',
    "inner": '''
def inner(input, other):
    """PyTorch's inner: sums of products over the last axes, of shape input.shape[:-1] + other.shape[:-1]
    (a product when either is 0-d). Integer arrays too: mx.inner is a matmul, floating-point only."""
    if input.ndim == 0 or other.ndim == 0:
        return input * other
    if mx.issubdtype(input.dtype, mx.inexact) or mx.issubdtype(other.dtype, mx.inexact):
        return mx.inner(input, other)
    a = input.reshape(input.shape[:-1] + (1,) * (other.ndim - 1) + input.shape[-1:])
    return (a * other).sum(-1)
''',
    "svd_reduced": '''
def svd_reduced(A):
    """PyTorch's linalg.svd(A, full_matrices=False): (U, S, Vh) with the first k = min(m, n) columns of U
    and rows of Vh (mx.linalg.svd returns the full ones)."""
    U, S, Vh = mx.linalg.svd(A, stream=mx.cpu)
    k = S.shape[-1]
    return U[..., :k], S, Vh[..., :k, :]
''',
    "svd_uv": '''
def svd_uv(input, some=True):
    """PyTorch's torch.svd: (U, S, V) with V the conjugate transpose of linalg.svd's Vh; the reduced U and V
    (k = min(m, n) columns) unless some=False."""
    U, S, Vh = mx.linalg.svd(input, stream=mx.cpu)
    if some:
        k = S.shape[-1]
        U, Vh = U[..., :k], Vh[..., :k, :]
    return U, S, mx.conj(mx.swapaxes(Vh, -1, -2))
''',
    "tensorinv": '''
def tensorinv(A, ind=2):
    """PyTorch's linalg.tensorinv: the inverse of A read as a square matrix (the first `ind` axes are its
    rows), shaped A.shape[ind:] + A.shape[:ind]."""
    rows = 1
    for n in A.shape[:ind]:
        rows *= n
    return mx.linalg.inv(A.reshape(rows, -1), stream=mx.cpu).reshape(A.shape[ind:] + A.shape[:ind])
''',
    "tensorsolve": '''
def tensorsolve(A, B, dims=None):
    """PyTorch's linalg.tensorsolve: X with tensordot(A, X, X.ndim) == B; the axes `dims` of A are moved
    to the end first. A is read as a square matrix of B.size rows."""
    if dims is not None:
        dims = [d % A.ndim for d in dims]
        A = mx.transpose(A, [d for d in range(A.ndim) if d not in dims] + dims)
    X = mx.linalg.solve(A.reshape(B.size, -1), B.reshape(-1), stream=mx.cpu)
    return X.reshape(A.shape[B.ndim:])
''',
    "triangular_solve": '''
def triangular_solve(b, A, upper=True, transpose=False, unitriangular=False):
    """PyTorch's triangular_solve: (X, A) with A X = b (A^T X = b with transpose=True), reading only A's
    upper (lower) triangle, its diagonal taken as ones when unitriangular."""
    M = mx.triu(A) if upper else mx.tril(A)
    if unitriangular:
        M = mx.where(mx.eye(A.shape[-1], dtype=mx.bool_), mx.array(1, dtype=A.dtype), M)
    if transpose:
        M, upper = mx.swapaxes(M, -1, -2), not upper
    return mx.linalg.solve_triangular(M, b, upper=upper, stream=mx.cpu), A
''',
    "quantile": '''
def quantile(input, q, dim=None, keepdim=False, interpolation="linear", ignore_nan=False):
    """PyTorch's quantile (nanquantile with ignore_nan=True), ATen's algorithm: sort along dim (the
    flattened input when dim is None; NaN sorts last), rank q * (n - 1) where n counts the values (the
    non-NaN ones for nanquantile; a slice with a NaN gives NaN for quantile, only NaNs for nanquantile),
    then 'linear' (torch's lerp), 'lower', 'higher', 'nearest' (half to even) or 'midpoint'. A 1-D q
    puts its axis first; a number or 0-d q none."""
    scalar = not isinstance(q, mx.array) or q.ndim == 0
    q = mx.array(q).astype(input.dtype).reshape(-1)
    if dim is None:
        x = input.reshape(-1)
    else:
        dim = dim % max(input.ndim, 1)
        x = mx.moveaxis(input.reshape(input.shape or (1,)), dim, -1)
    s = mx.expand_dims(mx.sort(x, axis=-1), -2)
    nan = mx.isnan(s)
    if ignore_nan:
        ranks = mx.maximum(q * ((~nan).sum(-1) - 1).astype(input.dtype), 0)
    else:
        last = s.shape[-1] - 1
        ranks = mx.where(nan.any(-1), mx.array(last, dtype=input.dtype), q * last)
    if interpolation == "lower":
        ranks = mx.floor(ranks)
    elif interpolation == "higher":
        ranks = mx.ceil(ranks)
    elif interpolation == "nearest":
        ranks = mx.round(ranks)
    below = mx.floor(ranks).astype(mx.int32)
    out = mx.take_along_axis(s, mx.expand_dims(below, -1), axis=-1).squeeze(-1)
    if interpolation in ("linear", "midpoint"):
        above = mx.take_along_axis(s, mx.expand_dims(mx.ceil(ranks).astype(mx.int32), -1), axis=-1).squeeze(-1)
        w = ranks - below if interpolation == "linear" else mx.full(ranks.shape, 0.5, dtype=input.dtype)
        out = mx.where(w < 0.5, out + w * (above - out), above - (above - out) * (1 - w))
    out = mx.moveaxis(out, -1, 0)
    if keepdim:
        if dim is None:
            out = out.reshape(out.shape[:1] + (1,) * input.ndim)
        elif input.ndim:
            out = mx.expand_dims(out, dim + 1)
    return out[0] if scalar else out
''',
    "signbit": '''
def signbit(input):
    """PyTorch's signbit: True where the sign bit is set (-0.0 and negative NaNs included) for floats,
    x < 0 for integers, False for bools."""
    if input.dtype == mx.bool_:
        return mx.zeros(input.shape, dtype=mx.bool_)
    if not mx.issubdtype(input.dtype, mx.floating):
        return input < 0
    bits = {mx.float16: mx.int16, mx.bfloat16: mx.int16, mx.float32: mx.int32, mx.float64: mx.int64}[input.dtype]
    return mx.view(input, bits) < 0
''',
    "copysign": '''
def copysign(input, other):
    """PyTorch's copysign: the magnitude of input with the sign bit of other (-0.0 counts as negative), in
    the floating-point type the two promote to (float32 for integers)."""
    input = input if isinstance(input, mx.array) else mx.array(input)
    other = other if isinstance(other, mx.array) else mx.array(other, dtype=input.dtype if mx.issubdtype(input.dtype, mx.floating) else mx.float32)
    dtype = (input[..., :0] + other[..., :0]).dtype if input.ndim and other.ndim else (input + other).dtype
    if not mx.issubdtype(dtype, mx.floating):
        dtype = mx.float32
    magnitude = mx.abs(input.astype(dtype))
    return mx.where(signbit(other.astype(dtype)), -magnitude, magnitude)
''',
    "gcd": '''
def gcd(input, other):
    """PyTorch's gcd of integer arrays: Euclid's algorithm on the magnitudes, unrolled over the longest run
    the dtype can need (consecutive Fibonacci numbers); gcd(0, 0) is 0."""
    a, b = mx.abs(input), mx.abs(other)
    a, b = mx.broadcast_arrays(a, b)
    steps = {1: 12, 2: 24, 4: 47, 8: 93}[a.dtype.size]
    for _ in range(steps):
        nonzero = b != 0
        a, b = mx.where(nonzero, b, a), mx.where(nonzero, a % mx.where(nonzero, b, 1), 0)
    return a
''',
    "lcm": '''
def lcm(input, other):
    """PyTorch's lcm of integer arrays: |input / gcd * other|, 0 when either is 0."""
    g = gcd(input, other)
    return mx.abs(mx.where(g == 0, 0, input // mx.where(g == 0, 1, g) * other))
''',
    "chebyshev_series": '''
def chebyshev_series(x, coefficients):
    """Cephes' chbevl: the Chebyshev series with these coefficients (highest order first) at x."""
    b0, b1, b2 = mx.full(x.shape, coefficients[0], dtype=x.dtype), mx.zeros_like(x), mx.zeros_like(x)
    for c in coefficients[1:]:
        b2, b1 = b1, b0
        b0 = x * b1 - b2 + c
    return 0.5 * (b0 - b2)
''',
    "i0e": '''
def i0e(input):
    """PyTorch's special.i0e, exp(-|x|) I0(x): ATen's (Cephes') Chebyshev series on [0, 8] and (8, inf)."""
    A = [-4.41534164647933937950e-18, 3.33079451882223809783e-17, -2.43127984654795469359e-16,
         1.71539128555513303061e-15, -1.16853328779934516808e-14, 7.67618549860493561688e-14,
         -4.85644678311192946090e-13, 2.95505266312963983461e-12, -1.72682629144155570723e-11,
         9.67580903537323691224e-11, -5.18979560163526290666e-10, 2.65982372468238665035e-9,
         -1.30002500998624804212e-8, 6.04699502254191894932e-8, -2.67079385394061173391e-7,
         1.11738753912010371815e-6, -4.41673835845875056359e-6, 1.64484480707288970893e-5,
         -5.75419501008210370398e-5, 1.88502885095841655729e-4, -5.76375574538582365885e-4,
         1.63947561694133579842e-3, -4.32430999505057594430e-3, 1.05464603945949983183e-2,
         -2.37374148058994688156e-2, 4.93052842396707084878e-2, -9.49010970480476444210e-2,
         1.71620901522208775349e-1, -3.04682672343198398683e-1, 6.76795274409476084995e-1]
    B = [-7.23318048787475395456e-18, -4.83050448594418207126e-18, 4.46562142029675999901e-17,
         3.46122286769746109310e-17, -2.82762398051658348494e-16, -3.42548561967721913462e-16,
         1.77256013305652638360e-15, 3.81168066935262242075e-15, -9.55484669882830764870e-15,
         -4.15056934728722208663e-14, 1.54008621752140982691e-14, 3.85277838274214270114e-13,
         7.18012445138366623367e-13, -1.79417853150680611778e-12, -1.32158118404477131188e-11,
         -3.14991652796324136454e-11, 1.18891471078464383424e-11, 4.94060238822496958910e-10,
         3.39623202570838634515e-9, 2.26666899049817806459e-8, 2.04891858946906374183e-7,
         2.89137052083475648297e-6, 6.88975834691682398426e-5, 3.36911647825569408990e-3,
         8.04490411014108831608e-1]
    x = mx.abs(input if mx.issubdtype(input.dtype, mx.floating) else input.astype(mx.float32))
    big = mx.maximum(x, 8.0)
    return mx.where(x <= 8.0, chebyshev_series(x / 2.0 - 2.0, A), chebyshev_series(32.0 / big - 2.0, B) / mx.sqrt(big))
''',
    "i0": '''
def i0(input):
    """PyTorch's i0 (special.i0): exp(|x|) * i0e(x), as ATen computes it."""
    x = input if mx.issubdtype(input.dtype, mx.floating) else input.astype(mx.float32)
    return mx.exp(mx.abs(x)) * i0e(x)
''',
    "i1e": '''
def i1e(input):
    """PyTorch's special.i1e, exp(-|x|) I1(x): ATen's (Cephes') Chebyshev series on [0, 8] and (8, inf),
    odd in x."""
    A = [2.77791411276104639959e-18, -2.11142121435816608115e-17, 1.55363195773620046921e-16,
         -1.10559694773538630805e-15, 7.60068429473540693410e-15, -5.04218550472791168711e-14,
         3.22379336594557470981e-13, -1.98397439776494371520e-12, 1.17361862988909016308e-11,
         -6.66348972350202774223e-11, 3.62559028155211703701e-10, -1.88724975172282928790e-9,
         9.38153738649577178388e-9, -4.44505912879632808065e-8, 2.00329475355213526229e-7,
         -8.56872026469545474066e-7, 3.47025130813767847674e-6, -1.32731636560394358279e-5,
         4.78156510755005422638e-5, -1.61760815825896745588e-4, 5.12285956168575772895e-4,
         -1.51357245063125314899e-3, 4.15642294431288815669e-3, -1.05640848946261981558e-2,
         2.47264490306265168283e-2, -5.29459812080949914269e-2, 1.02643658689847095384e-1,
         -1.76416518357834055153e-1, 2.52587186443633654823e-1]
    B = [7.51729631084210481353e-18, 4.41434832307170791151e-18, -4.65030536848935832153e-17,
         -3.20952592199342395980e-17, 2.96262899764595013876e-16, 3.30820231092092828324e-16,
         -1.88035477551078244854e-15, -3.81440307243700780478e-15, 1.04202769841288027642e-14,
         4.27244001671195135429e-14, -2.10154184277266431302e-14, -4.08355111109219731823e-13,
         -7.19855177624590851209e-13, 2.03562854414708950722e-12, 1.41258074366137813316e-11,
         3.25260358301548823856e-11, -1.89749581235054123450e-11, -5.58974346219658380687e-10,
         -3.83538038596423702205e-9, -2.63146884688951950684e-8, -2.51223623787020892529e-7,
         -3.88256480887769039346e-6, -1.10588938762623716291e-4, -9.76109749136146840777e-3,
         7.78576235018280120474e-1]
    x = input if mx.issubdtype(input.dtype, mx.floating) else input.astype(mx.float32)
    a = mx.abs(x)
    big = mx.maximum(a, 8.0)
    out = mx.where(a <= 8.0, chebyshev_series(a / 2.0 - 2.0, A) * a, chebyshev_series(32.0 / big - 2.0, B) / mx.sqrt(big))
    return mx.where(x < 0, -out, out)
''',
    "i1": '''
def i1(input):
    """PyTorch's special.i1: exp(|x|) * i1e(x), as ATen computes it."""
    x = input if mx.issubdtype(input.dtype, mx.floating) else input.astype(mx.float32)
    return mx.exp(mx.abs(x)) * i1e(x)
''',
    "ndtri": '''
def ndtri(input):
    """PyTorch's special.ndtri, the inverse of the standard normal CDF: ATen's (Cephes') rational
    approximations (|p - 0.5| <= 3/8, then in z = sqrt(-2 log p) below and above 8); -inf / inf at 0 / 1,
    NaN outside [0, 1]."""
    def polevl(x, coefficients):
        out = mx.zeros_like(x)
        for c in coefficients:
            out = out * x + c
        return out
    P0 = [-5.99633501014107895267e1, 9.80010754185999661536e1, -5.66762857469070293439e1,
          1.39312609387279679503e1, -1.23916583867381258016e0]
    Q0 = [1.0, 1.95448858338141759834e0, 4.67627912898881538453e0, 8.63602421390890590575e1,
          -2.25462687854119370527e2, 2.00260212380060660359e2, -8.20372256168333339912e1,
          1.59056225126211695515e1, -1.18331621121330003142e0]
    P1 = [4.05544892305962419923e0, 3.15251094599893866154e1, 5.71628192246421288162e1,
          4.40805073893200834700e1, 1.46849561928858024014e1, 2.18663306850790267539e0,
          -1.40256079171354495875e-1, -3.50424626827848203418e-2, -8.57456785154685413611e-4]
    Q1 = [1.0, 1.57799883256466749731e1, 4.53907635128879210584e1, 4.13172038254672030440e1,
          1.50425385692907503408e1, 2.50464946208309415979e0, -1.42182922854787788574e-1,
          -3.80806407691578277194e-2, -9.33259480895457427372e-4]
    P2 = [3.23774891776946035970e0, 6.91522889068984211695e0, 3.93881025292474443415e0,
          1.33303460815807542389e0, 2.01485389549179081538e-1, 1.23716634817820021358e-2,
          3.01581553508235416007e-4, 2.65806974686737550832e-6, 6.23974539184983293730e-9]
    Q2 = [1.0, 6.02427039364742014255e0, 3.67983563856160859403e0, 1.37702099489081330271e0,
          2.16236993594496635890e-1, 1.34204006088543189037e-2, 3.28014464682127739104e-4,
          2.89247864745380683936e-6, 6.79019408009981274425e-9]
    p = input if mx.issubdtype(input.dtype, mx.floating) else input.astype(mx.float32)
    e2 = 0.13533528323661269189  # exp(-2)
    upper = p > 1.0 - e2
    y = mx.where(upper, 1.0 - p, p)
    # the middle: |p - 0.5| <= 3/8
    m = y - 0.5
    m2 = m * m
    middle = (m + m * (m2 * polevl(m2, P0) / polevl(m2, Q0))) * 2.50662827463100050242
    # the tails, in z = sqrt(-2 log y) (y kept positive where the branch is not taken)
    t = mx.sqrt(-2.0 * mx.log(mx.clip(y, 1e-45, e2)))
    z = 1.0 / t
    x1 = mx.where(t < 8.0, z * polevl(z, P1) / polevl(z, Q1), z * polevl(z, P2) / polevl(z, Q2))
    tail = (t - mx.log(t) / t) - x1
    tail = mx.where(upper, tail, -tail)
    out = mx.where(y > e2, middle, tail)
    out = mx.where(p == 0, -mx.inf, mx.where(p == 1, mx.inf, out))
    return mx.where((p < 0) | (p > 1) | mx.isnan(p), mx.nan, out)
''',
    "lgamma": '''
def lgamma(input):
    """PyTorch's lgamma (special.gammaln), log |Gamma(x)|: Stirling's series after shifting x below 8 up by
    eight (subtracting the logs of the factors), reflection log(pi / |sin(pi x)|) - lgamma(1 - x) below
    0.5; inf at the poles (0, -1, -2, ...) and at +-inf."""
    x = input if mx.issubdtype(input.dtype, mx.floating) else input.astype(mx.float32)
    reflect = x < 0.5
    t = mx.where(reflect, 1.0 - x, x)
    small = t < 8.0
    shift = mx.zeros_like(t)
    for k in range(8):
        shift = shift + mx.where(small, mx.log(t + k), 0.0)
    y = mx.where(small, t + 8.0, t)
    r = 1.0 / y
    r2 = r * r
    series = r * (1.0 / 12 - r2 * (1.0 / 360 - r2 * (1.0 / 1260 - r2 / 1680)))
    positive = (y - 0.5) * mx.log(y) - y + 0.91893853320467274178 + series - shift
    d = x - mx.round(x)  # |sin(pi x)| = |sin(pi d)|, d exact and small near the poles
    reflected = mx.log(mx.pi / mx.abs(mx.sin(mx.pi * d))) - positive
    out = mx.where(reflect, reflected, positive)
    return mx.where(mx.isinf(x) | (reflect & (d == 0)), mx.inf, out)
''',
    "digamma": '''
def digamma(input):
    """PyTorch's digamma (special.digamma / psi), ATen's float algorithm: reflection
    digamma(1 - x) - pi / tan(pi * r) below 0 (r: x less its nearest integer), the recurrence up to 10, then the asymptotic series;
    -inf at +0 (inf at -0), NaN at the negative integers."""
    x = input if mx.issubdtype(input.dtype, mx.floating) else input.astype(mx.float32)
    A = [8.33333333333333333333e-2, -2.10927960927960927961e-2, 7.57575757575757575758e-3,
         -4.16666666666666666667e-3, 3.96825396825396825397e-3, -8.33333333333333333333e-3,
         8.33333333333333333333e-2]
    negative = x < 0
    t = mx.where(negative, 1.0 - x, x)
    result = mx.zeros_like(t)
    for _ in range(10):
        below = t < 10
        result = result - mx.where(below, 1.0 / mx.where(below, t, 1.0), 0.0)
        t = mx.where(below, t + 1.0, t)
    z = 1.0 / (t * t)
    poly = mx.zeros_like(t)
    for c in A:
        poly = poly * z + c
    series = mx.where(t < 1.0e17, z * poly, 0.0)
    positive = mx.where(t == 10, result + 2.25175258906672110764, result + mx.log(t) - 0.5 / t - series)
    r = x - mx.round(x)  # tan(pi x) = tan(pi r), r exact and small near the poles
    out = mx.where(negative, positive - mx.pi / mx.tan(mx.pi * r), positive)
    out = mx.where(negative & (r == 0), mx.nan, out)
    return mx.where(x == 0, mx.where(signbit(x), mx.inf, -mx.inf), out)
''',
    "hurwitz_zeta": '''
def hurwitz_zeta(x, q):
    """PyTorch's special.zeta, the Hurwitz zeta function sum over k >= 0 of (k + q)^-x, ATen's (Cephes')
    algorithm: direct terms until q + k passes 9 (at least nine), then the Euler-Maclaurin tail. inf at
    x = 1 and at the non-positive integers q, NaN for x < 1 and for q <= 0 with a fractional x."""
    x, q = mx.array(x), mx.array(q)
    dtype = (x + q).dtype
    if not mx.issubdtype(dtype, mx.floating):
        dtype = mx.float32
    x, q = mx.broadcast_arrays(x.astype(dtype), q.astype(dtype))
    A = [12.0, -720.0, 30240.0, -1209600.0, 47900160.0, -1.8924375803183791606e9, 7.47242496e10,
         -2.950130727918164224e12, 1.1646782814350067249e14, -4.5979787224074726105e15,
         1.8152105401943546773e17, -7.1661652561756670113e18]
    lowest = mx.min(q).item() if q.size else 1.0
    terms = max(9, int(9 - lowest) + 1) if lowest == lowest else 9  # q + terms > 9 everywhere
    s = q ** -x
    a = q
    for _ in range(terms):
        a = a + 1.0
        s = s + a ** -x
    b = a ** -x
    w = a
    s = s + b * w / (x - 1.0) - 0.5 * b
    fac = mx.ones_like(x)
    k = mx.zeros_like(x)
    for c in A:
        fac = fac * (x + k)
        b = b / w
        s = s + fac * b / c
        k = k + 1.0
        fac = fac * (x + k)
        b = b / w
        k = k + 1.0
    whole_q = (q <= 0) & (q == mx.floor(q))
    out = mx.where((q <= 0) & (x != mx.floor(x)), mx.nan, s)
    out = mx.where(whole_q, mx.inf, out)
    return mx.where(x == 1, mx.inf, mx.where(x < 1, mx.nan, out))
''',
    "polygamma": '''
def polygamma(n, input):
    """PyTorch's polygamma (special.polygamma): digamma for n = 0, else (-1)^(n+1) n! zeta(n + 1, x)."""
    if n == 0:
        return digamma(input)
    factorial = 1.0
    for k in range(2, n + 1):
        factorial *= k
    return (1.0 if n % 2 else -1.0) * factorial * hurwitz_zeta(float(n + 1), input)
''',
    "multigammaln": '''
def multigammaln(input, p):
    """PyTorch's special.multigammaln: p (p - 1) / 4 log(pi) + the sum of lgamma(x - j / 2), j < p."""
    out = mx.zeros_like(input) + p * (p - 1) / 4 * 1.1447298858494002  # log(pi)
    for j in range(p):
        out = out + lgamma(input - j / 2)
    return out
''',
    "diagonal_scatter": '''
def diagonal_scatter(input, src, offset=0, dim1=0, dim2=1):
    """PyTorch's diagonal_scatter: a copy of input with src written on its diagonal `offset` of axes dim1 and
    dim2 (src's last axis runs along the diagonal, its other axes are input's others in order)."""
    d1, d2 = dim1 % input.ndim, dim2 % input.ndim
    order = [a for a in range(input.ndim) if a not in (d1, d2)] + [d1, d2]
    x = mx.transpose(input, order)
    n, m = x.shape[-2], x.shape[-1]
    rows = mx.arange(n).reshape(-1, 1)
    cols = mx.arange(m).reshape(1, -1)
    on = cols - rows == offset
    position = mx.clip(rows if offset >= 0 else cols, 0, max(src.shape[-1] - 1, 0))
    values = mx.take(src, position.reshape(-1), axis=-1).reshape(src.shape[:-1] + position.shape)
    out = mx.where(on, values.astype(x.dtype), x)
    inverse = [0] * input.ndim
    for i, a in enumerate(order):
        inverse[a] = i
    return mx.transpose(out, inverse)
''',
    "unravel_index": '''
def unravel_index(indices, shape):
    """PyTorch's unravel_index: one array of coordinates per axis of `shape` (C order), each of indices'
    shape; negative indices count from the end of the flattened shape."""
    shape = (shape,) if isinstance(shape, int) else tuple(shape)
    size = 1
    for n in shape:
        size *= n
    flat = mx.where(indices < 0, indices + size, indices)
    out = []
    for n in reversed(shape):
        out.append(flat % n)
        flat = flat // n
    return tuple(reversed(out))
''',
    "scatter_reduce": '''
def scatter_reduce(input, dim, index, src, reduce, include_self=True):
    """PyTorch's scatter_reduce: src's leading block (index's shape) reduced into a copy of input at `index`
    along axis `dim` with 'sum', 'prod', 'amax', 'amin' or 'mean'; positions no index reaches keep input.
    include_self=False leaves input's own value out of the positions that are reached; 'mean' divides by
    the count of values reduced (integer arrays: floor division, as torch)."""
    src = src[tuple(slice(0, n) for n in index.shape)]
    where = scatter_positions(dim, index)
    reached = mx.zeros(input.shape, dtype=mx.int32).at[where].add(mx.ones(index.shape, dtype=mx.int32)) > 0
    if reduce in ("sum", "mean"):
        base = input if include_self else mx.where(reached, mx.zeros_like(input), input)
        out = base.at[where].add(src.astype(input.dtype))
        if reduce == "mean":
            count = mx.zeros(input.shape, dtype=input.dtype).at[where].add(mx.ones(index.shape, dtype=input.dtype))
            count = count + 1 if include_self else mx.maximum(count, 1)
            out = out // count if not mx.issubdtype(input.dtype, mx.inexact) else out / count
        return out
    if reduce == "prod":
        base = input if include_self else mx.where(reached, mx.ones_like(input), input)
        return base.at[where].multiply(src.astype(input.dtype))
    if reduce == "amax":
        low = mx.array(-mx.inf if mx.issubdtype(input.dtype, mx.inexact) else mx.iinfo(input.dtype).min, dtype=input.dtype)
        base = input if include_self else mx.where(reached, low, input)
        return base.at[where].maximum(src.astype(input.dtype))
    if reduce == "amin":
        high = mx.array(mx.inf if mx.issubdtype(input.dtype, mx.inexact) else mx.iinfo(input.dtype).max, dtype=input.dtype)
        base = input if include_self else mx.where(reached, high, input)
        return base.at[where].minimum(src.astype(input.dtype))
    raise ValueError(f"reduce argument must be either sum, prod, mean, amax or amin, got {reduce}")
''',
    "scatter_positions": LOCAL_HELPERS["scatter_positions"],
    "lu_factor": '''
def lu_factor(A):
    \"\"\"PyTorch's linalg.lu_factor: (LU, pivots) of LAPACK's getrf, as mx.linalg.lu_factor computes them, with
    torch's 1-based int32 pivots (MLX's are 0-based).\"\"\"
    LU, pivots = mx.linalg.lu_factor(A, stream=mx.cpu)
    return LU, (pivots + 1).astype(mx.int32)
''',
    "lu_permutation": '''
def lu_permutation(pivots, m):
    \"\"\"The row order perm of LAPACK's 1-based row interchanges `pivots` over m rows: A[perm] == L @ U.\"\"\"
    rows = mx.arange(m)
    perm = mx.broadcast_to(rows, pivots.shape[:-1] + (m,))
    for i in range(pivots.shape[-1]):
        j = pivots[..., i:i + 1].astype(mx.int32) - 1
        here, there = perm[..., i:i + 1], mx.take_along_axis(perm, j, axis=-1)
        perm = mx.where(rows == i, there, mx.where(rows == j, here, perm))
    return perm
''',
    "lu_unpack": '''
def lu_unpack(LU, pivots):
    \"\"\"PyTorch's lu_unpack: (P, L, U) with A == P @ L @ U from lu_factor's LU and 1-based pivots; L is
    m x k with a unit diagonal, U k x n (k = min(m, n)).\"\"\"
    m, n = LU.shape[-2], LU.shape[-1]
    k = min(m, n)
    L = mx.tril(LU, -1)[..., :, :k] + mx.eye(m, k, dtype=LU.dtype)
    U = mx.triu(LU)[..., :k, :]
    perm = lu_permutation(pivots, m)
    P = (mx.expand_dims(perm, -2) == mx.arange(m).reshape(-1, 1)).astype(LU.dtype)
    return P, L, U
''',
    "lu_solve": '''
def lu_solve(LU, pivots, B, left=True, adjoint=False):
    \"\"\"PyTorch's linalg.lu_solve: X with A X = B (A^H X = B with adjoint; X A = B with left=False) for
    A = P L U given by lu_factor's LU and 1-based pivots; batch axes broadcast.\"\"\"
    P, L, U = lu_unpack(LU, pivots)
    batch = mx.broadcast_shapes(LU.shape[:-2], B.shape[:-2])
    P, L, U = (mx.broadcast_to(M, batch + M.shape[-2:]) for M in (P, L, U))
    B = mx.broadcast_to(B, batch + B.shape[-2:])

    def h(M):
        return mx.conj(mx.swapaxes(M, -1, -2))

    def solve(Bm, adj):
        if adj:
            Y = mx.linalg.solve_triangular(h(U), Bm, upper=False, stream=mx.cpu)
            return P @ mx.linalg.solve_triangular(h(L), Y, upper=True, stream=mx.cpu)
        Y = mx.linalg.solve_triangular(L, mx.swapaxes(P, -1, -2) @ Bm, upper=False, stream=mx.cpu)
        return mx.linalg.solve_triangular(U, Y, upper=True, stream=mx.cpu)
    return solve(B, adjoint) if left else h(solve(h(B), not adjoint))
''',
    "nonzero_static": '''
def nonzero_static(input, size, fill_value=-1):
    \"\"\"PyTorch's nonzero_static: the coordinates of the first `size` nonzero elements (row-major), one row
    each, shape (size, ndim), the rows past the count filled with fill_value.\"\"\"
    flat = input.reshape(-1) != 0
    n = flat.size
    order = mx.arange(n)
    first = mx.argsort(mx.where(flat, order, order + n))[:size]  # the nonzero positions first, in order
    if first.size < size:
        first = mx.concatenate([first, mx.zeros(size - first.size, dtype=first.dtype)])
    found = mx.arange(size) < flat.sum()
    coords = []
    rest = first.astype(mx.int64)
    for d in reversed(input.shape):
        coords.append(rest % d)
        rest = rest // d
    out = mx.stack(coords[::-1], axis=-1) if coords else mx.zeros((size, 0), dtype=mx.int64)
    return mx.where(mx.expand_dims(found, -1), out, mx.array(fill_value, dtype=mx.int64))
''',
    "gradient": '''
def gradient(input, spacing=1, dim=None, edge_order=1):
    """PyTorch's gradient with edge_order=1: one array per axis in `dim` (all axes when None). Interior points
    take the central difference, second-order accurate also for uneven coordinates; the two ends one-sided
    differences. spacing is a number (the step of every axis), a list of numbers (one per axis), or a list
    of coordinate arrays (one per axis), or None (1). Integer input gives float32."""
    if edge_order != 1:
        raise ValueError("gradient: only edge_order=1 is translated")
    x = input if mx.issubdtype(input.dtype, mx.inexact) else input.astype(mx.float32)
    dims = list(range(x.ndim)) if dim is None else [dim] if isinstance(dim, int) else list(dim)
    spacing = 1 if spacing is None else spacing  # torch's spacing=None is the unit spacing
    steps = list(spacing) if isinstance(spacing, (list, tuple)) else [spacing] * len(dims)
    if len(steps) == 1 and len(dims) > 1:
        steps = steps * len(dims)
    out = []
    for d, h in zip(dims, steps):
        f = mx.moveaxis(x, d, -1)
        n = f.shape[-1]
        if isinstance(h, mx.array) and h.ndim == 1:
            c = h.astype(x.dtype)
            dx = c[1:] - c[:-1]
            hl, hr = dx[:-1], dx[1:]
            inner = (hl * hl * f[..., 2:] - hr * hr * f[..., :-2] + (hr * hr - hl * hl) * f[..., 1:-1]) / (hl * hr * (hl + hr))
            first = (f[..., 1:2] - f[..., :1]) / dx[0]
            last = (f[..., -1:] - f[..., -2:-1]) / dx[-1]
        else:
            inner = (f[..., 2:] - f[..., :-2]) / (2 * h)
            first = (f[..., 1:2] - f[..., :1]) / h
            last = (f[..., -1:] - f[..., -2:-1]) / h
        g = mx.concatenate([first, inner, last], axis=-1) if n > 2 else mx.concatenate([first, last], axis=-1)
        out.append(mx.moveaxis(g, -1, d))
    return tuple(out)
''',
    "normal_tensor": '''
def normal_tensor(mean, std=1.0):
    """PyTorch's normal with a tensor mean and / or std (no size): one standard normal draw per element of
    their broadcast shape, mean + std * z, in the dtype of the tensor given."""
    shape = mx.broadcast_shapes(getattr(mean, "shape", ()), getattr(std, "shape", ()))
    dtype = mean.dtype if isinstance(mean, mx.array) else std.dtype if isinstance(std, mx.array) else mx.float32
    return (mean + std * mx.random.normal(shape, dtype=dtype)).astype(dtype)
''',
    "frexp": '''
def frexp(input):
    """PyTorch's frexp: (mantissa, exponent) with input == mantissa * 2 ** exponent, |mantissa| in [0.5, 1)
    (0 for 0; inf and NaN keep themselves with exponent 0), read from the bits of the float (subnormals
    rescaled by 2 ** 64 first); float16 / bfloat16 through float32, in which their values are exact."""
    dtype = input.dtype
    x = input.astype(mx.float32) if dtype in (mx.float16, mx.bfloat16) else input
    ints, shift, mask, bias = (mx.int64, 52, 0x7FF, 1022) if x.dtype == mx.float64 else (mx.int32, 23, 0xFF, 126)
    tiny = (x != 0) & (mx.abs(x) < 2.0 ** -bias)  # subnormals: below the smallest normal number
    scaled = mx.where(tiny, x * 2.0 ** 64, x)
    bits = mx.view(scaled, ints)
    field = (bits >> shift) & mask
    exponent = field - bias - mx.where(tiny, 64, 0)
    mantissa = mx.view((bits & ~(mx.array(mask, dtype=ints) << shift)) | (mx.array(bias, dtype=ints) << shift), x.dtype)
    special = (x == 0) | mx.isinf(x) | mx.isnan(x)
    mantissa = mx.where(special, x, mantissa)
    exponent = mx.where(special, 0, exponent).astype(mx.int32)
    return mantissa.astype(dtype), exponent
''',
    "erfcx": '''
def erfcx(input):
    """PyTorch's special.erfcx, exp(x ** 2) * erfc(x): below 1 in magnitude from mx.erf, above from Laplace's
    continued fraction 1 / (sqrt(pi) (t + (1/2) / (t + 1 / (t + (3/2) / ...)))) taken 60 levels deep (float32
    within 2e-6 of the exact value); erfcx(-t) = 2 exp(t ** 2) - erfcx(t)."""
    x = input if mx.issubdtype(input.dtype, mx.floating) else input.astype(mx.float32)
    a = mx.abs(x)
    big = mx.maximum(a, 1.0)
    frac = mx.zeros_like(big)
    for k in range(60, 0, -1):
        frac = (k / 2) / (big + frac)
    positive = mx.where(a < 1.0, mx.exp(a * a) * (1.0 - mx.erf(a)), 1.0 / (1.7724538509055159 * (big + frac)))
    return mx.where(x < 0, 2.0 * mx.exp(x * x) - positive, positive)
''',
    "log_ndtr": '''
def log_ndtr(input):
    """PyTorch's special.log_ndtr, the log of the standard normal CDF, as ATen writes it: below -1
    log(erfcx(-t) / 2) - t ** 2 (t = x / sqrt(2): no underflow far in the tail), else log1p(-erfc(t) / 2)."""
    x = input if mx.issubdtype(input.dtype, mx.floating) else input.astype(mx.float32)
    t = x * 0.7071067811865476
    low = mx.log(erfcx(-t) / 2) - t * t
    q = mx.exp(-t * t) * erfcx(mx.abs(t))  # erfc(|t|)
    q = mx.where(t < 0, 2.0 - q, q)
    return mx.where(x < -1, low, mx.log1p(-q / 2))
''',
    "matrix_exp": '''
def matrix_exp(A):
    """PyTorch's linalg.matrix_exp: Higham's scaling and squaring with the [13/13] Pade approximant (A scaled by
    2 ** -s so that its largest 1-norm over the batch is at most 5.37, s read on the host), one solve, then s
    squarings."""
    b = [64764752532480000.0, 32382376266240000.0, 7771770303897600.0, 1187353796428800.0, 129060195264000.0,
         10559470521600.0, 670442572800.0, 33522128640.0, 1323241920.0, 40840800.0, 960960.0, 16380.0, 182.0, 1.0]
    norm = mx.max(mx.sum(mx.abs(A), axis=-2)).item() if A.size else 0.0
    s = 0
    while norm > 5.371920351148152 * 2 ** s:
        s += 1
    A = A / 2 ** s
    eye = mx.broadcast_to(mx.eye(A.shape[-1], dtype=A.dtype), A.shape)
    A2 = A @ A
    A4 = A2 @ A2
    A6 = A4 @ A2
    U = A @ (A6 @ (b[13] * A6 + b[11] * A4 + b[9] * A2) + b[7] * A6 + b[5] * A4 + b[3] * A2 + b[1] * eye)
    V = A6 @ (b[12] * A6 + b[10] * A4 + b[8] * A2) + b[6] * A6 + b[4] * A4 + b[2] * A2 + b[0] * eye
    R = mx.linalg.solve(V - U, V + U, stream=mx.cpu)
    for _ in range(s):
        R = R @ R
    return R
''',
    "mode": '''
def mode(input, dim=-1, keepdim=False):
    """PyTorch's mode: (values, indices) along dim, the most frequent value (the smallest of the tied ones) and
    the index of its last occurrence, as torch's CPU kernel. Counts by comparing every pair of the slice
    (n * n memory per slice)."""
    x = mx.moveaxis(input.reshape(input.shape or (1,)), dim, -1)
    n = x.shape[-1]
    counts = (mx.expand_dims(x, -1) == mx.expand_dims(x, -2)).sum(-1)
    tied = counts == counts.max(-1, keepdims=True)
    if mx.issubdtype(x.dtype, mx.inexact):
        highest = mx.array(mx.inf, dtype=x.dtype)
    elif x.dtype == mx.bool_:
        highest = mx.array(True)
    else:
        highest = mx.array(mx.iinfo(x.dtype).max, dtype=x.dtype)
    values = mx.min(mx.where(tied, x, highest), axis=-1, keepdims=True)
    indices = mx.max(mx.where(x == values, mx.arange(n), -1), axis=-1, keepdims=True).astype(mx.int64)
    if keepdim and input.ndim:
        return mx.moveaxis(values, -1, dim), mx.moveaxis(indices, -1, dim)
    return values.squeeze(-1), indices.squeeze(-1)
''',
    "result_type": '''
def result_type(tensor1, tensor2):
    """PyTorch's result_type: arrays with dimensions, 0-d arrays and Python numbers (bool, int64, float32,
    complex64) each promote within their class by torch's table (MLX's is the same on the types both
    have); a lower class changes the result only when of a higher category (bool < integer < floating <
    complex), as ATen's combine_categories. Raises where torch has no result (unsigned types wider than
    8 bits mixed with others) or MLX has no type (complex128, complex32)."""
    def kind(t):
        return 0 if t == mx.bool_ else 3 if mx.issubdtype(t, mx.complexfloating) else 2 if mx.issubdtype(t, mx.floating) else 1

    def promote(a, b):
        if a is None or b is None:
            return a if b is None else b
        if a != b and {a, b} & {mx.uint16, mx.uint32, mx.uint64}:
            raise TypeError(f"torch does not promote {a} with {b}")
        if {a, b} == {mx.float64, mx.complex64}:
            raise TypeError("the result would be complex128, which MLX does not have")
        return (mx.zeros((), dtype=a) + mx.zeros((), dtype=b)).dtype

    def combine(higher, lower):
        if higher is None or lower is None:
            return higher if lower is None else lower
        if kind(higher) == 3:
            return higher
        if kind(lower) == 3:
            if kind(higher) != 2:
                return lower
            if higher not in (mx.float32, mx.bfloat16):  # torch: complex128 / complex32
                raise TypeError(f"the result would be the complex type of {higher}, which MLX does not have")
            return mx.complex64
        if kind(higher) == 2:
            return higher
        if higher == mx.bool_ or kind(lower) == 2:
            return promote(higher, lower)
        return higher

    classes = [None, None, None]  # with dimensions, 0-d, Python numbers
    for operand in (tensor1, tensor2):
        if isinstance(operand, mx.array):
            slot, dtype = (0 if operand.ndim else 1), operand.dtype
        else:
            slot = 2
            dtype = (mx.bool_ if isinstance(operand, bool) else mx.int64 if isinstance(operand, int)
                     else mx.complex64 if isinstance(operand, complex) else mx.float32)
        classes[slot] = promote(classes[slot], dtype)
    return combine(classes[0], combine(classes[1], classes[2]))
''',
    "regularized_gamma": '''
def regularized_gamma(a, x, upper=False):
    """PyTorch's special.gammainc (igamma) / gammaincc (igammac, upper=True), the regularized incomplete gamma
    functions, by Cephes' series (lower) or continued fraction (upper, where x > 1 and x > a), 100 terms each,
    and torch's values on the boundary (NaN below 0, a = 0, x = 0, infinities). ATen switches to an
    asymptotic expansion for large a near x, where these lose float32 accuracy: a above 50 raises."""
    a, x = mx.array(a), mx.array(x)
    dtype = (a + x).dtype
    if not mx.issubdtype(dtype, mx.floating):
        dtype = mx.float32
    a, x = mx.broadcast_arrays(a.astype(dtype), x.astype(dtype))
    if mx.any(mx.isfinite(a) & (a > 50)).item():
        raise ValueError("regularized_gamma: a above 50 needs ATen's asymptotic expansion (not translated)")
    safe_a = mx.where((a > 0) & mx.isfinite(a), a, 1.0)
    safe_x = mx.where((x > 0) & mx.isfinite(x), x, 1.0)
    ax = mx.exp(safe_a * mx.log(safe_x) - safe_x - lgamma(safe_a))
    r, c, total = safe_a, mx.ones_like(safe_a), mx.ones_like(safe_a)
    for _ in range(100):
        r = r + 1.0
        c = c * safe_x / r
        total = total + c
    lower_series = total * ax / safe_a
    y = 1.0 - safe_a
    z = safe_x + y + 1.0
    count = mx.zeros_like(safe_a)
    pkm2, qkm2, pkm1, qkm1 = mx.ones_like(safe_a), safe_x, safe_x + 1.0, z * safe_x
    ratio = pkm1 / qkm1
    for _ in range(100):
        count, y, z = count + 1.0, y + 1.0, z + 2.0
        pk, qk = pkm1 * z - pkm2 * y * count, qkm1 * z - qkm2 * y * count
        ratio = mx.where(qk != 0, pk / mx.where(qk != 0, qk, 1.0), ratio)
        scale = mx.where(mx.abs(pk) > 2.0 ** 60, 2.0 ** -60, 1.0)  # keep the recurrence in float range
        pkm2, pkm1, qkm2, qkm1 = pkm1 * scale, pk * scale, qkm1 * scale, qk * scale
    upper_cf = ratio * ax
    use_cf = (safe_x > 1.0) & (safe_x > safe_a)
    out = mx.where(use_cf, upper_cf, 1.0 - lower_series) if upper else mx.where(use_cf, 1.0 - upper_cf, lower_series)
    low, high = (1.0, 0.0) if upper else (0.0, 1.0)  # the values at x = 0 and x = inf
    out = mx.where(mx.isinf(x), high, out)
    out = mx.where(mx.isinf(a), low, out)
    out = mx.where(x == 0, low, out)
    out = mx.where(a == 0, mx.where(x > 0, high, mx.nan), out)
    bad = (x < 0) | (a < 0) | mx.isnan(a) | mx.isnan(x) | (mx.isinf(a) & mx.isinf(x))
    return mx.where(bad, mx.nan, out).astype(dtype)
''',
    "can_cast": '''
def can_cast(from_, to):
    \"\"\"PyTorch's can_cast: False only from complex to a non-complex type, from floating point to an integer
    type, and from a non-bool type to bool (torch's categories; widths never matter).\"\"\"
    def category(t):
        return 0 if t == mx.bool_ else 3 if mx.issubdtype(t, mx.complexfloating) else 2 if mx.issubdtype(t, mx.floating) else 1
    return category(from_) <= category(to)
''',
}
DEPENDS = {
    "chained_matmul": ("integer_matmul",),
    "lcm": ("gcd",),
    "copysign": ("signbit",),
    "i0e": ("chebyshev_series",), "i0": ("chebyshev_series", "i0e"),
    "i1e": ("chebyshev_series",), "i1": ("chebyshev_series", "i1e"),
    "digamma": ("signbit",),
    "polygamma": ("signbit", "digamma", "hurwitz_zeta"),
    "multigammaln": ("lgamma",),
    "scatter_reduce": ("scatter_positions",),
    "lu_unpack": ("lu_permutation",),
    "log_ndtr": ("erfcx",),
    "regularized_gamma": ("lgamma",),
    "lu_solve": ("lu_permutation", "lu_unpack"),
}


@register("breadth_helper")
def breadth_helper(rule, original: cst.Call, call: cst.Call, receiver, rewriter):
    """Fill the rule's template, then add the helpers of HELPERS it calls (and theirs) to the file."""
    bound = normalize(rule, bind(call.args, rule.signature, receiver))
    template = choose_template(rule, bound)
    result = expand_with_helpers(rewriter, template, rule, bound, HELPERS, DEPENDS)
    return result, template_roots(template)
