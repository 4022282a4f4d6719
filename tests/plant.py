"""Plant a realistic bug into one of the lab's own functions, for the tests that prove the gate catches it.

    plant(monkeypatch, "lab.train.train_step", "optimizer.zero_grad(set_to_none=True)", "pass")

The function's source is edited (one snippet replaced, exactly once), compiled in its own module's
globals, and installed everywhere the original is referenced: its module, every lab module that
imported it by name, and its class for a method. monkeypatch undoes all of it after the test. This is
what a student's one-line edit in lab/ does to the code the experiments (and so the gate) run.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import sys
import textwrap


def _resolve(qualname: str):
    """'lab.models.MLP.forward' -> (module, owner object, attribute name, function)."""
    parts = qualname.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        try:
            module = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        owner = module
        for name in parts[cut:-1]:
            owner = getattr(owner, name)
        return module, owner, parts[-1], getattr(owner, parts[-1])
    raise ValueError(f"cannot resolve {qualname}")


def import_lab() -> None:
    """Import every module of the lab first: one imported while the bug is planted would keep the buggy
    function forever (its `from x import f` runs once), surviving monkeypatch's undo."""
    import lab

    for info in pkgutil.walk_packages(lab.__path__, "lab."):
        importlib.import_module(info.name)


def plant(monkeypatch, qualname: str, old: str, new: str) -> None:
    import_lab()
    module, owner, attr, original = _resolve(qualname)
    source = textwrap.dedent(inspect.getsource(original))  # from the first decorator line: decorators re-apply
    if source.count(old) != 1:
        raise AssertionError(f"{qualname}: the snippet to replace occurs {source.count(old)} times, not once: {old!r}")
    source = source.replace(old, new)
    namespace: dict = {}
    if inspect.isclass(owner):
        # A method may call super() with no arguments: that needs a __class__ cell, which only a class body or
        # an enclosing function binding __class__ provides. Compile the method inside such a function.
        source = "def _plant_factory(__class__):\n" + textwrap.indent(source, "    ") + f"    return {attr}\n"
    exec(compile(source, inspect.getsourcefile(original), "exec"), module.__dict__, namespace)
    patched = namespace["_plant_factory"](owner) if inspect.isclass(owner) else namespace[attr]
    monkeypatch.setattr(owner, attr, patched)
    if owner is module:  # modules that did `from module import attr` hold the original object too
        for name, mod in list(sys.modules.items()):
            if name == "lab" or name.startswith("lab."):
                for key, value in list(vars(mod).items()):
                    if value is original and mod is not module:
                        monkeypatch.setattr(mod, key, patched)


__all__ = ["plant"]
