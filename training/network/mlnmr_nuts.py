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
    """NUTS with ``num_warmup`` adaptation iterations; ``block`` draws per chain per call."""

    def __init__(self, model, *, num_warmup: int, block: int, target_accept: float = 0.9, dense_mass: bool = False,
                 init_radius: float = 0.1):
        from numpyro.infer import NUTS, init_to_uniform

        self.kernel = NUTS(model, target_accept_prob=target_accept, init_strategy=init_to_uniform(radius=init_radius),
                           dense_mass=dense_mass)
        self.num_warmup, self.block = int(num_warmup), int(block)
        self._loop = None
        self.calls = 0  # compiled-loop calls (chains x blocks): for the tests and benchmarks

    def _compiled(self):
        if self._loop is None:
            import jax
            import jax.numpy as jnp
            from jax import lax

            kernel, S = self.kernel, self.block

            def loop(state, args, n, start):
                """``n`` NUTS iterations from ``state``; iteration i >= ``start`` is stored at i - start."""
                post = kernel.postprocess_fn(args, {})

                def keep(s):
                    return post(s.z), s.diverging, s.num_steps

                buf = jax.tree.map(lambda x: jnp.zeros((S,) + jnp.shape(x), jnp.result_type(x)), keep(state))

                def body(i, carry):
                    s, b = carry
                    s = kernel.sample(s, args, {})
                    j = i - start
                    new = keep(s)
                    b = lax.cond(j >= 0, lambda bb: jax.tree.map(lambda x, v: x.at[j].set(v), bb, new), lambda bb: bb, b)
                    return s, b

                return lax.fori_loop(0, n, body, (state, buf))

            self._loop = jax.jit(loop)
        return self._loop

    def run(self, seed: int, args: tuple, num_chains: int) -> Run:
        """Warm-up and ``block`` draws for each of ``num_chains`` chains, one after the other."""
        import jax

        keys = jax.random.split(jax.random.PRNGKey(seed), num_chains) if num_chains > 1 else [jax.random.PRNGKey(seed)]
        states, parts = [], []
        for c in range(num_chains):
            s0 = self.kernel.init(keys[c], self.num_warmup, None, model_args=args, model_kwargs={})
            loop = self._compiled()
            s, _ = loop(s0, args, self.num_warmup, self.num_warmup + self.block)  # warm-up: nothing kept
            s, buf = loop(s, args, self.block, 0)
            self.calls += 2
            states.append(s)
            parts.append(buf)
        run = Run(states, args, {}, np.zeros((num_chains, 0), bool), np.zeros((num_chains, 0), int))
        self._append(run, parts)
        return run

    def extend(self, run: Run) -> Run:
        """``block`` more draws per chain from each chain's last state (no new warm-up)."""
        loop = self._compiled()
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
