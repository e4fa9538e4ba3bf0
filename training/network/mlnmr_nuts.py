"""NUTS chains run by one compiled loop per model structure (NumPyro's kernel, our driver).

NumPyro's ``MCMC.run`` with ``chain_method="sequential"`` wraps its sampling loop in a fresh
``jax.jit`` on every call and for every chain (``numpyro.util.fori_collect`` passes a new jitted
body as a static argument), so XLA compiled the whole NUTS loop four times per fit (once per chain)
and again for every network of a training run — measured: 4 compiles of ``_fori_collect_loop`` per
fit, ~85% of the CPU time of a default-network fit (BENCHMARKS.md, "ML-NMR speed"). Here the loop is
jitted once per :class:`Chains` object and called for every chain (and every later fit of the same
structure, and every extension of a fit): same kernel, same per-chain keys and initialisation as
``MCMC.run`` (``random.split(PRNGKey(seed), chains)``, then ``kernel.init`` per chain), same
iterations (the draws are the states after iterations ``warmup + 1 … warmup + samples``), so the
draws are those of ``MCMC(..., chain_method="sequential").run`` up to floating-point reassociation
by XLA.

A fit can be extended: :meth:`Chains.extend` continues every chain from its last state (after
warm-up: step size and mass matrix stay fixed) and appends the new draws, so a fit whose
diagnostics miss the thresholds can be given more draws without a new warm-up or a new compile.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Run:
    """The chains of one fit: their last states (for :meth:`Chains.extend`) and the draws so far."""

    states: list
    args: tuple
    draws: dict  # site -> (chains, draws, ...)
    diverging: np.ndarray  # (chains, draws)
    num_steps: np.ndarray
    blocks: list = field(default_factory=list)  # draws per chain added by each call


class Chains:
    """NUTS with ``num_warmup`` adaptation iterations; ``block`` draws per chain per call.

    ``laplace`` (default): before warm-up, the posterior mode of the unconstrained parameters
    (L-BFGS on the compiled log density and its gradient) and the Hessian there (central differences
    of the gradient) give a normal approximation: each chain starts at its own draw from it, and its
    covariance is the initial (inverse) mass matrix, which warm-up then adapts in NumPyro's windows
    (``adapt_mass``; with ``adapt_mass=False`` it is kept and only the step size is adapted: fewer
    leapfrog steps, but τ's tail ESS was lower and R-hat closer to 1.01 on the default network).
    Without it (or if no finite mode is found), NumPyro's start: uniform(−r, r) on the unconstrained
    scale and the identity mass matrix, which on these models cost 100–300 leapfrog steps per
    iteration early in warm-up (the scales of log σ and of the effects differ by 100×) against
    10–15 from the Laplace start."""

    def __init__(self, model, *, num_warmup: int, block: int, target_accept: float = 0.9, dense_mass: bool = False,
                 init_radius: float = 0.1, laplace: bool = True, adapt_mass: bool = True):
        self.model = model
        self.num_warmup, self.block = int(num_warmup), int(block)
        self.target_accept, self.dense_mass, self.init_radius, self.laplace = target_accept, dense_mass, init_radius, laplace
        self.adapt_mass = adapt_mass
        self._fns = None
        self.calls = 0  # compiled-loop calls (chains x blocks): for the tests and benchmarks
        self.start = {}  # how the last run started (laplace: mode found, iterations)

    def _setup(self, args: tuple):
        """Once per structure: the model's potential, the kernel and the compiled functions."""
        if self._fns is not None:
            return self._fns
        import jax
        import jax.numpy as jnp
        from jax import lax
        from jax.flatten_util import ravel_pytree
        from numpyro.infer import init_to_uniform
        from numpyro.infer.hmc import hmc
        from numpyro.infer.util import initialize_model

        # The model's potential and postprocessing functions and the layout of its unconstrained
        # parameters, from NumPyro's initialize_model traced abstractly (jax.eval_shape): run eagerly,
        # its search for valid initial values evaluated the model and its gradient op by op, one small
        # XLA compile per operation (285 on the default network, ~12 of the stage's ~70 CPU-s), only
        # for a starting point that is not used (_starts gives every chain its own). Same functions,
        # same layout, so the same compiled sampler and the same draws.
        got = {}

        def layout(*a):
            info = initialize_model(jax.random.PRNGKey(0), self.model, model_args=a, dynamic_args=True,
                                    init_strategy=init_to_uniform(radius=self.init_radius))
            z = info.param_info.z
            flat, got["unravel"] = ravel_pytree(z)
            got.update(names=tuple(sorted(z)), pe_gen=info.potential_fn, post_gen=info.postprocess_fn)
            return flat

        flat0 = jax.eval_shape(layout, *args)
        unravel, names, pe_gen, post_gen = got["unravel"], got["names"], got["pe_gen"], got["post_gen"]
        init_kernel, sample_kernel = hmc(potential_fn_gen=pe_gen, algo="NUTS")
        W, S, dense, ta = self.num_warmup, self.block, self.dense_mass, self.target_accept

        def value_and_grad(flat, a):
            return jax.value_and_grad(lambda u: pe_gen(*a)(unravel(u)))(flat)

        def init(flat, key, inv_mass, a, adapt_mass):
            return init_kernel(unravel(flat), num_warmup=W, inverse_mass_matrix={names: inv_mass},
                               dense_mass=[names] if dense else [], target_accept_prob=ta, adapt_mass_matrix=adapt_mass, trajectory_length=None,
                               model_args=a, rng_key=key)

        def loop(state, a, n, start):
            """``n`` NUTS iterations from ``state``; iteration i >= ``start`` is stored at i - start."""
            post = post_gen(*a)

            def keep(st):
                return post(st.z), st.diverging, st.num_steps

            buf = jax.tree.map(lambda x: jnp.zeros((S,) + jnp.shape(x), jnp.result_type(x)), keep(state))

            def body(i, carry):
                st, b = carry
                st = sample_kernel(st, a, {})
                j = i - start
                new = keep(st)
                b = lax.cond(j >= 0, lambda bb: jax.tree.map(lambda x, v: x.at[j].set(v), bb, new), lambda bb: bb, b)
                return st, b

            return lax.fori_loop(0, n, body, (state, buf))

        self._fns = {"vg": jax.jit(value_and_grad), "init": jax.jit(init, static_argnums=4), "loop": jax.jit(loop), "n": int(np.prod(flat0.shape))}
        return self._fns

    def _starts(self, seed: int, args: tuple, num_chains: int) -> tuple:
        """(starting points (chains, n) on the unconstrained scale, initial inverse mass matrix)."""
        from scipy.optimize import minimize

        f = self._fns
        n = f["n"]
        rng = np.random.default_rng([seed, 20261207])
        uniform = rng.uniform(-self.init_radius, self.init_radius, (num_chains, n))
        eye = np.eye(n) if self.dense_mass else np.ones(n)
        self.start = {"laplace": False}
        if not self.laplace:
            return uniform, eye

        def fg(x):
            v, g = f["vg"](x, args)
            return float(v), np.asarray(g, float)

        with np.errstate(all="ignore"):
            res = minimize(fg, np.zeros(n), jac=True, method="L-BFGS-B", options={"maxiter": 1000})
            mode = res.x
            h = 1e-5 * (1.0 + np.abs(mode))
            H = np.empty((n, n))
            for j in range(n):
                e = np.zeros(n)
                e[j] = h[j]
                H[:, j] = (fg(mode + e)[1] - fg(mode - e)[1]) / (2 * h[j])
        H = 0.5 * (H + H.T)
        if not (np.isfinite(res.fun) and np.all(np.isfinite(H))):
            return uniform, eye
        w, V = np.linalg.eigh(H)
        w = np.clip(w, 1e-4, None)  # no direction wider than the N(0, 100^2) priors
        cov = (V / w) @ V.T
        root = V / np.sqrt(w)
        starts = mode + rng.standard_normal((num_chains, n)) @ root.T
        ok = np.array([np.isfinite(fg(x)[0]) for x in starts])
        starts[~ok] = mode
        self.start = {"laplace": True, "optimiser_iterations": int(res.nit), "converged": bool(res.success)}
        return starts, (cov if self.dense_mass else np.diag(cov))

    def run(self, seed: int, args: tuple, num_chains: int) -> Run:
        """Warm-up and ``block`` draws for each of ``num_chains`` chains, one after the other."""
        import jax
        import jax.numpy as jnp

        f = self._setup(args)
        starts, inv_mass = self._starts(seed, args, num_chains)
        keys = jax.random.split(jax.random.PRNGKey(seed), num_chains)
        states, parts = [], []
        for c in range(num_chains):
            s0 = f["init"](jnp.asarray(starts[c]), keys[c], jnp.asarray(inv_mass), args, self.adapt_mass or not self.start["laplace"])
            s, _ = f["loop"](s0, args, self.num_warmup, self.num_warmup + self.block)  # warm-up: nothing kept
            s, buf = f["loop"](s, args, self.block, 0)
            self.calls += 2
            states.append(s)
            parts.append(buf)
        run = Run(states, args, {}, np.zeros((num_chains, 0), bool), np.zeros((num_chains, 0), int))
        self._append(run, parts)
        return run

    def extend(self, run: Run) -> Run:
        """``block`` more draws per chain from each chain's last state (no new warm-up)."""
        loop = self._fns["loop"]
        parts = []
        for c, s in enumerate(run.states):
            s, buf = loop(s, run.args, self.block, 0)
            self.calls += 1
            run.states[c] = s
            parts.append(buf)
        self._append(run, parts)
        return run

    def _append(self, run: Run, parts: list) -> None:
        z = {k: np.stack([np.asarray(p[0][k]) for p in parts]) for k in parts[0][0]}
        div = np.stack([np.asarray(p[1]) for p in parts])
        steps = np.stack([np.asarray(p[2]) for p in parts])
        run.draws = {k: np.concatenate([run.draws[k], v], 1) for k, v in z.items()} if run.draws else z
        run.diverging = np.concatenate([run.diverging, div], 1)
        run.num_steps = np.concatenate([run.num_steps, steps], 1)
        run.blocks.append(self.block)
