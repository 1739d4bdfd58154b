"""The one registry mechanism (`zoo.registry.Registry`) and the zoo's entries, old names included."""

from __future__ import annotations

import pytest

from zoo.registry import Registry


def test_register_get_and_replace():
    reg = Registry("thing")
    reg.register("a", 1)

    @reg.register()
    def tool():
        return "tool"

    assert reg.get("a") == 1 and reg.get("tool") is tool and "tool" in reg
    with pytest.warns(UserWarning, match="registered twice"):
        reg.register("a", 2)
    assert reg.get("a") == 2 and list(reg) == ["a", "tool"] and len(reg) == 2


def test_aliases_resolve_and_names_are_listed_once():
    reg = Registry("thing")
    reg.register("new.name", "x", aliases=("old-name", "older"))
    reg.register("other", "y")
    assert reg.get("old-name") == reg.get("older") == reg.get("new.name") == "x"
    assert "old-name" in reg and reg.canonical("older") == "new.name"
    assert reg.names() == ["new.name", "other"] and list(reg) == reg.names() and len(reg) == 2
    assert [name for name, _ in reg.items()] == ["new.name", "other"]
    assert reg.aliases("new.name") == reg.aliases("old-name") == ("old-name", "older")
    assert reg.aliases("other") == ()


def test_unknown_name_lists_the_known_names():
    reg = Registry("widget")
    reg.register("alpha", 1, aliases=("a",))
    reg.register("beta", 2)
    with pytest.raises(KeyError, match=r"unknown widget 'gamma'; known: alpha, beta"):
        reg.get("gamma")
    with pytest.raises(KeyError, match=r"did you mean 'alpha'"):
        reg.get("alpah")


def test_duplicate_aliases_are_errors():
    reg = Registry("thing")
    reg.register("a", 1, aliases=("old-a",))
    reg.register("b", 2)
    with pytest.raises(ValueError, match="alias 'old-a' is already an alias of 'a'"):
        reg.register("c", 3, aliases=("old-a",))
    with pytest.raises(ValueError, match="alias 'b' is the name of another thing"):
        reg.register("c", 3, aliases=("b",))
    with pytest.raises(ValueError, match="'old-a' is already an alias of 'a'"):
        reg.register("old-a", 3)
    with pytest.raises(ValueError, match="alias 'c' is its own name"):
        reg.register("c", 3, aliases=("c",))
    with pytest.raises(ValueError, match="alias 'x' is given twice"):
        reg.register("c", 3, aliases=("x", "x"))
    assert "c" not in reg and "x" not in reg  # a refused registration changes nothing
    reg.register("a", 1, aliases=("old-a",))  # the same entry again (a re-imported module) is fine


def test_registry_imports_nothing_of_the_project():
    import ast
    from pathlib import Path

    import zoo.registry

    tree = ast.parse(Path(zoo.registry.__file__).read_text())
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)} | {
        a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert not {m for m in imported if m and m.split(".")[0] in ("zoo", "modalities", "benchmarks", "recipes")}


# ---- zoo entries ---------------------------------------------------------------------------------

OLD_NAMES = {
    "shapes-vlm-dpo": "shapes-vlm.dpo",
    "shapes-vlm-bdhs": "shapes-vlm.bdhs",
    "shapes-vlm-online-bdhs": "shapes-vlm.online-bdhs",
    "llava-1.5-7b-bdhs": "llava-1.5-7b.bdhs",
    "llava-1.6-7b-bdhs": "llava-1.6-7b.bdhs",
    "qwen2-vl-2b-dpo": "qwen2-vl-2b.dpo",
    "qwen2.5-vl-3b-bdhs": "qwen2.5-vl-3b.bdhs",
    "qwen2.5-omni-3b-dpo": "qwen2.5-omni-3b.dpo",
    "idefics3-8b-dpo": "idefics3-8b.dpo",
    "janus-pro-1b-dpo": "janus-pro-1b.dpo",
}


@pytest.mark.parametrize("old,new", sorted(OLD_NAMES.items()))
def test_old_entry_names_resolve_and_repos_keep_their_names(old, new):
    from zoo.entries import ENTRIES

    entry = ENTRIES.get(old)
    assert entry is ENTRIES.get(new) and entry.name == new
    assert entry.repo == f"zoo/{old}"  # pushes made under the old name keep loading


def test_entry_names_separate_backbone_and_recipe():
    from zoo import list_models

    names = [e.name for e in list_models()]
    assert len(names) == len(set(names)) and not set(OLD_NAMES) & set(names)  # each entry listed once
    assert "shapes-vlm" in names  # the SFT base is the backbone alone
    recipes = {n.rsplit(".", 1)[1] for n in names if n != "shapes-vlm"}  # "<backbone>.<recipe>"
    assert recipes == {"dpo", "bdhs", "online-bdhs", "sft-chosen", "online-dpo", "mixed-dpo", "grpo", "reward", "llf", "llf-reward"}
