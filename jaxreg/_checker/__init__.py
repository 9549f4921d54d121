"""The derivation checker: `check`, `check_identity`, `check_update`, `tap`, reports and cases.

Re-exported from :mod:`jaxreg`; nothing here is public by its module path.

Files, in the order a check runs through them:

* ``check.py`` — :func:`jaxreg.check`: inputs, the compiled functions, the order of stages.
* ``tap.py`` — :func:`jaxreg.tap` and its trace-time contexts.
* ``reference.py`` — ``jax.grad`` of the loss w.r.t. params and taps, the referee's samples.
* ``plan.py`` — how the derivation's output pairs with the reference (the rows).
* ``tolerance.py`` — the tolerances and the one relative-error rule.
* ``compare.py`` — the comparison: in-jit row statistics, host-side elementwise detail.
* ``kinks.py`` — one-sided probes: simple and composite kinks.
* ``referee.py`` — the referee's verdict on the reference itself.
* ``diagnose.py`` — what a wrong row's mismatch looks like.
* ``steps.py`` — which later wrong rows are wrong on their own.
* ``summary.py`` — the report's one sentence.
* ``report.py`` — :class:`jaxreg.Report` and :class:`jaxreg.Row`.
* ``identity.py``, ``update.py`` — :func:`jaxreg.check_identity`, :func:`jaxreg.check_update`.
* ``usercode.py`` — describing an exception raised by the user's code.
* ``case.py`` — :class:`jaxreg.Case`, an entry of a derivation file's ``CHECKS``.
"""
