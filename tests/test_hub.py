"""The local hub (revisions, checksums, atomic pushes), the zoo entries and `load`'s resolution order."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.conftest import build_tiny_policy
from zoo.hub import HubError, IntegrityError, LocalHub, push_run
from zoo.zoo_model import ZooModel, load

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture()
def hub(tmp_path):
    return LocalHub(tmp_path / "hub")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A run folder as `zoo train` writes it: model/ + recipe.yaml + results.json."""
    run = tmp_path_factory.mktemp("run")
    build_tiny_policy().backbone.save_pretrained(run / "model")
    (run / "recipe.yaml").write_text("recipe_name: tiny\n")
    (run / "results.json").write_text(json.dumps({"suite": "smoke", "results": {"chair": {"chair_i": 0.1}}}))
    return run


def test_push_revisions_and_main(hub, tmp_path):
    folder = tmp_path / "f"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.txt").write_text("one")
    (folder / "sub" / "b.json").write_text("{}")
    first = hub.push(folder, "me/thing", message="first")
    (folder / "a.txt").write_text("two")
    second = hub.push(folder, "me/thing")
    assert first != second and hub.main("me/thing") == second
    assert hub.revisions("me/thing") == [first, second]
    assert (hub.resolve("me/thing").path / "a.txt").read_text() == "two"
    old = hub.resolve("me/thing", revision=first[:6])  # an unambiguous prefix works
    assert (old.path / "a.txt").read_text() == "one" and old.manifest["message"] == "first"
    assert hub.resolve("me/thing", revision=second).manifest["parent"] == first
    assert hub.push(folder, "me/thing") == second  # same content, same revision
    with pytest.raises(HubError, match="no single revision"):
        hub.resolve("me/thing", revision="ffffff")
    with pytest.raises(HubError, match="no repo"):
        hub.resolve("me/other")
    with pytest.raises(ValueError, match="org/name"):
        hub.push(folder, "../escape")


def test_tampered_or_extra_files_are_refused(hub, tmp_path):
    folder = tmp_path / "f"
    folder.mkdir()
    (folder / "w.bin").write_bytes(b"\x00" * 64)
    hub.push(folder, "me/m")
    path = hub.resolve("me/m").path
    (path / "w.bin").write_bytes(b"\x01" + b"\x00" * 63)
    with pytest.raises(IntegrityError, match="w.bin does not match its recorded sha256"):
        hub.resolve("me/m")
    (path / "w.bin").write_bytes(b"\x00" * 64)
    (path / "extra.py").write_text("print('hi')")
    with pytest.raises(IntegrityError, match="extra"):
        hub.resolve("me/m")


def test_a_push_failing_midway_leaves_main_unchanged_and_cleans_up(hub, tmp_path, monkeypatch):
    """An exception mid-copy (real kills: tests/hub/test_integrity.py)."""
    folder = tmp_path / "f"
    folder.mkdir()
    for i in range(4):
        (folder / f"{i}.txt").write_text(str(i))
    good = hub.push(folder, "me/m")
    (folder / "3.txt").write_text("changed")
    import zoo.hub as zhub

    calls = {"n": 0}
    real_copy = zhub.shutil.copyfile

    def failing_copy(src, dst):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt("interrupted")
        return real_copy(src, dst)

    monkeypatch.setattr(zhub.shutil, "copyfile", failing_copy)
    with pytest.raises(KeyboardInterrupt):
        hub.push(folder, "me/m")
    monkeypatch.undo()
    assert calls["n"] == 3 and hub.main("me/m") == good and hub.revisions("me/m") == [good]
    assert not list((hub.repo_dir("me/m") / zhub.STAGING).iterdir())
    hub.resolve("me/m")  # still verifies


def test_load_resolution_order(hub, run_dir, tmp_path, monkeypatch):
    import huggingface_hub

    push_run(run_dir, "zoo/shapes-vlm", hub)
    m = load(run_dir / "model", hub=hub)  # 1. a local folder
    assert m.source == "folder"
    m = load("shapes-vlm", hub=hub)  # 2. a zoo name -> its repo in the local hub
    assert m.source == "local-hub" and m.revision == hub.main("zoo/shapes-vlm")
    assert m.results["results"]["chair"]["chair_i"] == 0.1 and (m.path / "recipe.yaml").is_file()
    seen = []

    def fake_snapshot(repo, revision=None):  # 3. the HF Hub, for what neither holds
        seen.append((repo, revision))
        return str(run_dir / "model")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot)
    m = load("someone/else", revision="v1", hub=hub)
    assert m.source == "hf-hub" and seen == [("someone/else", "v1")]
    load("shapes-vlm", hub=hub)
    assert len(seen) == 1  # the local hub answered first


def test_missing_embedded_model_says_how_to_build_it(hub):
    with pytest.raises(HubError, match=r"zoo build shapes-vlm\.dpo"):
        load("shapes-vlm-dpo", hub=hub)  # the old name resolves to the entry


def test_zoo_build_runs_the_recipe_and_pushes_then_load_finds_it(hub, tmp_path, monkeypatch, capsys):
    from tests.train.test_sft import tiny_overrides
    from zoo.cli import main
    from zoo.entries import ENTRIES, ZooEntry

    tiny = ZooEntry("tiny-sft", "composed", ("image",), ("recipe=sft",), "test/tiny-sft")
    monkeypatch.setitem(ENTRIES._entries, "tiny-sft", tiny)  # registered for this test only
    monkeypatch.setenv("ZOO_HOME", str(hub.root.parent))
    with pytest.raises(HubError, match="zoo build tiny-sft"):
        load("tiny-sft", hub=hub)  # loading never trains
    extra = [o for o in tiny_overrides(tmp_path, steps=2) if not o.startswith("output_dir=")]
    assert main(["build", "tiny-sft", *extra, "--runs-root", str(tmp_path / "runs")]) == 0
    assert "tiny-sft built and pushed" in capsys.readouterr().out
    m = load("tiny-sft", hub=hub)
    assert m.source == "local-hub" and hub.exists("test/tiny-sft")
    assert isinstance(m.generate("Describe the image.", images=[_image(tmp_path)], max_new_tokens=4), str)


def test_zoo_build_refuses_unknown_and_gpu_entries(capsys):
    from zoo.cli import main

    assert main(["build", "shapes-vlm.dpoo"]) == 2
    assert "did you mean 'shapes-vlm.dpo'" in capsys.readouterr().err
    assert main(["build", "qwen2.5-vl-3b-bdhs"]) == 2  # an old name resolves; the entry needs a GPU
    err = capsys.readouterr().err
    assert "not built from the embedded world" in err and "--repo zoo/qwen2.5-vl-3b-bdhs" in err


def _image(tmp_path):
    from PIL import Image

    path = tmp_path / "img.png"
    Image.new("RGB", (48, 48), (200, 30, 30)).save(path)
    return str(path)


def test_automodel_and_load_agree_in_a_fresh_process(hub, run_dir, tmp_path):
    """After `import zoo`, transformers' Auto class loads a pushed model; `load` gives the same logits."""
    push_run(run_dir, "me/tiny", hub)
    code = f"""
import json, torch, zoo
from transformers import AutoModelForImageTextToText
from zoo.hub import LocalHub
hub = LocalHub({str(hub.root)!r})
path = hub.resolve("me/tiny").path
auto = AutoModelForImageTextToText.from_pretrained(path).eval()
m = zoo.load("me/tiny", hub=hub)
from PIL import Image
text = m.processor.apply_chat_template([{{"role": "user", "content": [{{"type": "image"}}, {{"type": "text", "text": "Describe the image."}}]}}], add_generation_prompt=True)
inputs = m.processor(text=[text], images=[Image.new("RGB", (48, 48), (20, 200, 40))])
with torch.no_grad():
    a = auto(input_ids=inputs["input_ids"], pixel_values=inputs["pixel_values"]).logits
    b = m.policy.model(input_ids=inputs["input_ids"], pixel_values=inputs["pixel_values"]).logits
print(json.dumps({{"max_diff": float((a - b).abs().max()), "source": m.source}}))
"""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result == {"max_diff": 0.0, "source": "local-hub"}


def test_list_models_and_cli(capsys, hub, run_dir, monkeypatch):
    from zoo import list_models
    from zoo.cli import main
    from zoo.entries import ENTRIES, ZooEntry

    names = [e.name for e in list_models()]
    assert {"shapes-vlm", "shapes-vlm.dpo", "shapes-vlm.bdhs", "shapes-vlm.online-bdhs"} <= set(names)
    monkeypatch.setenv("ZOO_HOME", str(hub.root.parent))
    frozen = ZooEntry("x-frozen", "hf/x", ("image",), ("model=hf", "model.freeze=[visual,audio_tower]"), "zoo/x",
                      embedded=False)
    monkeypatch.setitem(ENTRIES._entries, frozen.name, frozen)
    rev = push_run(run_dir, "me/pushed-tiny", hub, base_model="zoo/shapes-vlm")  # a repo of the user's, no entry's
    monkeypatch.setenv("COLUMNS", "80")  # a narrow terminal
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert all(len(line) <= 80 or " " not in line.strip() for line in out.splitlines())  # a path may be longer
    tokens = out.split()
    assert "shapes-vlm.bdhs" in tokens and "shapes-vlm-bdhs)" in tokens  # the name and its older alias
    # every override shows whole, [lists] included (rich would read them as markup): never cut at a line end
    for entry in list_models():
        for override in entry.recipe:
            assert override in tokens, override
    assert "model.path=llava-hf/llava-v1.6-vicuna-7b-hf" in tokens and "model.freeze=[visual,audio_tower]" in tokens
    # what the user pushed is listed after the zoo's entries, with its revision, date, recipe and base
    pushed = out[out.index("pushed to the local hub (1 repo)"):]
    assert f"me/pushed-tiny · main {rev} · " in pushed and "1 revision" in pushed
    assert "recipe tiny · base zoo/shapes-vlm" in pushed

    # piped, with no terminal and no COLUMNS: 80 columns, nothing cut
    monkeypatch.delenv("COLUMNS")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    piped = subprocess.run([sys.executable, "-m", "zoo.cli", "list"], capture_output=True, text=True, env=env,
                           timeout=120)
    assert piped.returncode == 0, piped.stderr[-2000:]
    assert all(len(line) <= 80 or " " not in line.strip() for line in piped.stdout.splitlines())
    assert "me/pushed-tiny" in piped.stdout
    assert "model.path=llava-hf/llava-v1.6-vicuna-7b-hf" in piped.stdout.split()
    assert isinstance(load.__doc__, str) and ZooModel.generate.__doc__


def test_a_loaded_model_prints_a_short_summary(hub, run_dir):
    m = load(run_dir / "model", hub=hub)
    text = repr(m)
    assert str(m) == text and len(text.splitlines()) <= 5
    assert text.startswith(f"ZooModel {str(run_dir / 'model')!r} from the folder {run_dir / 'model'}")
    assert "composed (zoo_composed): image encoder vit_tiny_patch16_224" in text and "LM llama (2 layers" in text
    params = sum(p.numel() for p in m.policy.parameters())
    assert f"inputs      image, text · {params / 1e3:.1f}K parameters · float32 on cpu" in text
    assert len(repr(m.policy).splitlines()) > 50  # the module tree is still there, on .policy

    rev = push_run(run_dir, "me/summary", hub)
    assert repr(load("me/summary", hub=hub)).splitlines()[0] == f"ZooModel 'me/summary' from the local hub, revision {rev}"


def test_pushed_card_is_valid_and_complete(hub, run_dir):
    """The card parses with huggingface_hub, its model-index round-trips, and it says what a user needs."""
    from huggingface_hub import ModelCard
    from huggingface_hub.repocard_data import model_index_to_eval_results

    rev = push_run(run_dir, "me/carded", hub, base_model="zoo/shapes-vlm")
    path = hub.resolve("me/carded").path
    card = ModelCard((path / "README.md").read_text())
    data = card.data.to_dict()
    assert data["base_model"] == "zoo/shapes-vlm" and data["library_name"] == "zoo"
    name, results = model_index_to_eval_results(data["model-index"])
    assert name == "carded" and {(r.dataset_config, r.metric_type, r.metric_value) for r in results} == {
        ("chair", "chair_i", 0.1)}
    for needed in ('load("me/carded")', "## Training", "## Data", "## Results", "## Intended use and limitations",
                   "| chair | chair_i ↓ | 0.100 |", "Recipe `"):
        assert needed in card.text, needed
    assert (path / ".eval_results" / "smoke.yaml").is_file() and rev == hub.main("me/carded")


def test_zoo_eval_takes_a_zoo_name(hub, run_dir, tiny_world, monkeypatch, capsys):
    from zoo.cli import main
    from zoo.results import load_results

    monkeypatch.setenv("ZOO_HOME", str(hub.root.parent))
    rev = push_run(run_dir, "zoo/shapes-vlm", hub)
    out = run_dir.parent / "eval.json"
    assert main(["eval", "shapes-vlm", "--suite", "smoke", "--world", str(tiny_world), "--limit", "2",
                 "--output", str(out)]) == 0
    results = load_results(out)
    assert results["model"] == "shapes-vlm" and results["revision"] == rev
    assert results["config"]["limit"] == 2  # what the card reads to mark the evaluation partial


@pytest.mark.parametrize("name,arch", [
    ("llava-1.5-7b.bdhs", "llava"), ("llava-1.6-7b.bdhs", "llava_next"), ("qwen2-vl-2b.dpo", "qwen2_vl"),
    ("qwen2.5-vl-3b.bdhs", "qwen2_5_vl"), ("qwen2.5-omni-3b.dpo", "qwen2_5_omni"), ("idefics3-8b.dpo", "idefics3"),
    ("janus-pro-1b.dpo", "janus"),
])
def test_real_backbone_entries_on_tiny_stand_ins(name, arch, hub, tmp_path):
    """The entry's GPU overrides compose and train (LoRA on the language model, towers frozen, the
    LoRA-disabled reference) on a tiny stand-in of its architecture; the result loads by zoo name."""
    from peft import PeftModel

    from tests.train.test_sft import tiny_overrides
    from zoo.entries import ENTRIES
    from zoo.models.native import NativeBackbone, build_tiny_native
    from zoo.train.run import compose_config, train

    entry = ENTRIES.get(name)
    assert not entry.embedded and "model=hf" in entry.recipe
    stand_in = build_tiny_native(arch, tmp_path / "stand-in")
    gpu_only = ("trainer.precision=", "trainer.accelerator=")
    overrides = [o.replace(f"model.path={entry.backbone}", f"model.path={stand_in}") for o in entry.recipe
                 if not o.startswith(gpu_only)]
    data = [o for o in tiny_overrides(tmp_path, steps=2) if o.startswith(("data", "trainer", "output_dir", "module.warmup"))]
    overrides += [*data, "model.dtype=float32", "model.lora.r=4", "model.lora.alpha=8", "recipe_name=x"]
    if entry.recipe[0] == "recipe=bdhs":
        overrides += ["module.pairs.config.max_tries=1", "module.pairs.config.max_sentence_tokens=4"]
    cfg = compose_config(overrides)
    assert cfg.module.reference._target_ == "zoo.align.reference.LoRAReference" and cfg.model.freeze == "default"
    metrics = train(cfg)
    assert metrics["global_step"] == 2 and torch.isfinite(torch.tensor(metrics["train/loss"]))
    from hydra.utils import instantiate

    policy = instantiate(cfg.model)
    assert isinstance(policy.backbone, NativeBackbone)
    peft = [m for m in policy.model.modules() if isinstance(m, PeftModel)]
    assert len(peft) == 1 and peft[0].peft_config["default"].r == 4
    trainable = {n for n, p in policy.model.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n for n in trainable)  # towers and base weights frozen
    push_run(tmp_path / "run", entry.repo, hub)
    m = load(name, hub=hub)
    assert m.source == "local-hub" and isinstance(m.policy.backbone, NativeBackbone)
    # the card names what the entry is, without the pusher repeating it
    from huggingface_hub import ModelCard

    assert ModelCard(m.card).data.base_model == entry.backbone
    assert f"| modalities | {', '.join(entry.modalities)} |" in m.card


def test_card_defaults_come_from_the_entries():
    from zoo.entries import SHAPES_BACKBONE, card_defaults

    assert card_defaults("zoo/shapes-vlm-dpo") == {"name": "shapes-vlm.dpo", "base_model": "zoo/shapes-vlm",
                                                   "backbone": SHAPES_BACKBONE, "modalities": ("image",)}
    assert card_defaults("zoo/shapes-vlm")["base_model"] is None  # trained from scratch on the world
    omni = card_defaults("zoo/qwen2.5-omni-3b-dpo")
    assert omni["base_model"] == "Qwen/Qwen2.5-Omni-3B" and omni["modalities"] == ("image", "audio", "video")
    assert card_defaults("me/anything") == {}
