"""Fast checks of the benchmark suite's arithmetic and timing helpers (no benchmark timings: benchmarks are not tests)."""

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

from bench_detection import run as detection_run  # noqa: E402
from bench_inference import attention_flops, counted_flops, vit_flops  # noqa: E402
from common import Timings, judged, time_interleaved  # noqa: E402
from profile_noise_effect import noise_effect  # noqa: E402

from modeling_pinclip import PinClipForImageClassification  # noqa: E402


def test_ratio_is_the_median_of_per_round_ratios() -> None:
    timings = Timings({"a": [2.0, 4.0, 30.0], "b": [1.0, 2.0, 3.0]})
    assert timings.ratio("a", "b") == 2.0  # the loaded third round (10×) does not move it
    assert timings.median("a") == 4.0


def test_interleaving_alternates_the_order() -> None:
    calls: list[str] = []
    time_interleaved({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}, rounds=3, warmup=1)
    assert calls == ["a", "b", "a", "b", "b", "a", "a", "b"]
    calls.clear()  # three: over six rounds each runs right after each other one as often as the other way round
    time_interleaved({name: (lambda name=name: calls.append(name)) for name in "pbm"}, rounds=6, warmup=0)
    rounds = ["".join(calls[i:i + 3]) for i in range(0, 18, 3)]
    assert sorted(rounds) == sorted(["pbm", "pmb", "bpm", "bmp", "mpb", "mbp"])
    pairs = [round_[i:i + 2] for round_ in rounds for i in range(2)]
    assert all(pairs.count(a + b) == pairs.count(b + a) for a, b in ("pb", "pm", "bm"))


def test_a_figure_and_its_verdict_are_judged_on_the_same_rounded_value() -> None:
    # judged unrounded, 0.9696 showed as 0.970 beside a FAIL of a ≥ 0.97 target, 1.1004 as 1.100 of a ≤ 1.10 one
    assert judged(0.9696, 0.97, 3) == (0.969, False)
    assert judged(0.97, 0.97, 3) == (0.97, True)  # 0.97 × 1000 is 969.999... in floats: still 0.970
    assert judged(1.1004, 1.10, 3, at_most=True) == (1.101, False)
    assert judged(1.1, 1.10, 3, at_most=True) == (1.1, True)
    assert judged(2.996, 3.0, 2) == (2.99, False)
    assert judged(0.5996, 0.6, 2) == (0.59, False)


def test_cpu_seconds_count_work_and_not_waiting() -> None:
    def spin() -> None:
        end = time.perf_counter() + 0.02
        while time.perf_counter() < end:
            pass

    timings = time_interleaved({"spin": spin, "sleep": lambda: time.sleep(0.02)}, rounds=2, warmup=0)
    assert len(timings.cpu_seconds["sleep"]) == 2
    assert min(timings.seconds["sleep"]) >= 0.02  # both take as long on the wall clock ...
    assert all(ratio > 5 for ratio in timings.cpu_ratios("spin", "sleep"))  # ... but only one works


def test_analytical_vit_flops_match_the_flop_counter(tiny_clip_dir: Path) -> None:
    from modeling_pinclip import PinClipForImageClassification

    model = PinClipForImageClassification.from_clip(str(tiny_clip_dir)).eval()
    vision = model.config.vision_config
    size = model.config.image_size
    expected = vit_flops(size, vision.patch_size, vision.hidden_size, vision.num_hidden_layers,
                         vision.intermediate_size, model.config.projection_dim)
    counted = counted_flops(model, torch.zeros(2, 3, size, size))
    attention = attention_flops(size, vision.patch_size, vision.hidden_size, vision.num_hidden_layers)
    # The counter either counts attention or (CPU flash-attention kernel) leaves exactly that term out.
    assert counted in (pytest.approx(2 * expected, rel=1e-3), pytest.approx(2 * (expected - attention), rel=1e-3))


def test_analytical_vit_flops_of_vit_b_16_are_the_hand_count() -> None:
    """ViT-B/16 at 224 px, by hand: 197 tokens, 16,848,125,952 multiply-adds outside attention (patch embedding
    115,605,504 + 12 layers × 1,394,343,936 + projection 393,216), attention 12 · 2 · 2 · 197² · 768 FLOP. The
    counter test above cannot tell a `vit_flops` that forgot attention from one that counts it."""
    assert attention_flops(224, 16, 768, 12) == 1_430_654_976
    assert vit_flops(224, 16, 768, 12, 3072, 512) == 2 * 16_848_125_952 + 1_430_654_976


def _fake_timings(seconds: dict[str, float]):
    """A stand-in for `time_interleaved` that runs nothing and reports `seconds` for each function in every round."""
    def timed(functions: dict, rounds: int, warmup: int = 1) -> Timings:
        assert set(functions) == set(seconds)
        return Timings({name: [seconds[name]] * rounds for name in functions},
                       {name: [seconds[name]] * rounds for name in functions})
    return timed


def test_each_speed_figure_points_the_way_its_target_reads(tmp_path: Path, monkeypatch) -> None:
    """Timings where one side is exactly twice (four times) as slow give the ratio each target speaks of, the right
    way up: a swapped ratio or an inverted utilisation passed every other test."""
    import bench_eval_throughput
    import bench_inference
    import bench_train_step
    import common
    from clip_checkpoints import CLIP_SHAPES

    monkeypatch.setattr(common, "CACHE_DIR", tmp_path)
    monkeypatch.setattr(bench_eval_throughput, "CACHE_DIR", tmp_path)

    monkeypatch.setattr(bench_train_step, "time_interleaved", _fake_timings({"pin": 2.0, "none": 1.0}))
    (step,) = bench_train_step.run(quick=True)
    assert (step.value, step.passed) == ("2.000×", False)  # pin's step takes twice none's: 2×, over ≤ 1.10×

    tiny = CLIP_SHAPES["tiny"]
    flops = 8 * vit_flops(tiny["image_size"], tiny["patch_size"], tiny["hidden_size"], tiny["num_hidden_layers"],
                          tiny["intermediate_size"], tiny["projection_dim"])  # a quick run's batch of 8
    matmul_seconds = 0.4 * (2 * 512**3) / (flops / 2.0)  # the matmul reaches 2.5× the model's FLOP/s
    monkeypatch.setattr(bench_inference, "time_interleaved",
                        _fake_timings({"pinclip": 2.0, "bare": 1.0, "matmul": matmul_seconds}))
    cost, utilisation = bench_inference.run(quick=True)
    assert (cost.value, cost.passed) == ("0.500×", False)  # half the bare model's images/s, under ≥ 0.97×
    assert (float(utilisation.value), utilisation.passed) == (pytest.approx(0.4, abs=0.011), False)

    monkeypatch.setattr(bench_eval_throughput, "time_interleaved", _fake_timings({"scan": 1.0, "pipeline": 4.0}))
    (throughput,) = bench_eval_throughput.run(quick=True)
    assert (throughput.value, throughput.passed) == ("4.00×", True)  # the loop takes 4× the scan's time: 4× images/s


def test_the_accelerator_tables_ratios_point_the_way_their_targets_read() -> None:
    import bench_gpu

    settings = bench_gpu.Settings(shape="tiny", train_batch=8, infer_batch=8, deploy_batch=8, matmul_size=64,
                                  rounds=2, calls_per_round=5)
    flops = 10**9
    matmul_flops = 2 * 64**3 * 5 * 4  # what one timed matmul sample does: 4 matmuls per call
    matmul_seconds = 0.4 * matmul_flops / (flops * 5 / 2.0)  # the matmul reaches 2.5× the model's FLOP/s
    train = Timings({"pin": [2.0, 2.0], "none": [1.0, 1.0]})
    infer = Timings({"pinclip": [2.0, 2.0], "bare": [1.0, 1.0], "matmul": [matmul_seconds] * 2})
    deploy = Timings({"bf16": [2.0, 2.0], "compiled": [1.0, 1.0], "matmul": [matmul_seconds] * 2})
    markdown = bench_gpu.table(torch.device("cpu"), settings, True, train, infer, flops, deploy, flops, "compiled",
                               1.0)
    rows = {row.split(" | ")[0].lstrip("| "): row.split(" | ") for row in markdown.splitlines() if row.startswith("| ")}
    assert rows["training-step cost of PiN noise"][2:5] == ["2.000×", "≤ 1.10×", "FAIL"]
    assert rows["inference cost"][2:5] == ["0.500×", "≥ 0.97×", "FAIL"]
    assert rows["compute utilisation"][2] == "0.40"
    assert rows["compute utilisation (bf16 weights, compiled)"][2] == "0.80"  # twice as fast as eager


def test_detection_row_reads_the_ablation_summary(tmp_path: Path) -> None:
    from ablation import mean_std

    unseen = {"pin": [0.80, 0.82, 0.81], "random": [0.79, 0.80, 0.78], "none": [0.76, 0.78, 0.77]}
    summary = {"command": "python ablation.py --ablation_seeds 3",
               "accuracy": {mode: {"unseen": mean_std(values)} for mode, values in unseen.items()}}
    path = tmp_path / "ablation.json"
    path.write_text(json.dumps(summary))
    figure, pretrained = detection_run(ablation=path, pretrained_ablation=tmp_path / "absent.json")
    assert figure.passed is True
    assert "pin 81.0 ± 1.0" in figure.value and "+4.00" in figure.value
    summary["accuracy"]["none"]["unseen"] = mean_std([0.80, 0.81, 0.82])  # pin ahead by less than 2 points
    path.write_text(json.dumps(summary))
    assert detection_run(ablation=path)[0].passed is False
    # a margin just under the target (1.998) showed as "+2.0" beside a FAIL; the margin shown and the verdict agree
    summary["accuracy"]["random"]["unseen"] = mean_std([0.70] * 3)
    for pin, none, shown, passed in ((0.78049, 0.76051, "+1.99", False), (0.78051, 0.76049, "+2.00", True)):
        summary["accuracy"]["pin"]["unseen"] = mean_std([pin] * 3)
        summary["accuracy"]["none"]["unseen"] = mean_std([none] * 3)
        path.write_text(json.dumps(summary))
        row = detection_run(ablation=path)[0]
        assert row.passed is passed and f"(pin − none = {shown})" in row.value, row.value
    # `pin` best is judged on the means as shown: 77.04 against random's 77.05 both read 77.0, a tie
    for mode, value in (("pin", 0.7704), ("random", 0.7705), ("none", 0.75)):
        summary["accuracy"][mode]["unseen"] = mean_std([value] * 3)
    path.write_text(json.dumps(summary))
    row = detection_run(ablation=path)[0]
    assert "pin 77.0" in row.value and "random 77.0" in row.value and row.passed is True, row.value
    assert pretrained.passed is None and "not measured" in pretrained.value
    assert "pretrain_backbone.py" in pretrained.details[0]  # says how to write the missing summary
    missing, _ = detection_run(ablation=tmp_path / "absent.json")
    assert missing.passed is None and "not measured" in missing.value
    # the same figures from a one-epoch trial, or the protocol's own command without one of its arguments: no verdict
    # (a FAIL was given), as for a LoRA ablation without its backbone
    for command in ("python ablation.py --ablation_seeds 3 --num_train_epochs 1", "python ablation.py --lora_r 6"):
        path.write_text(json.dumps({**summary, "command": command}))
        row = detection_run(ablation=path)[0]
        assert row.passed is None and f"`{command}` is not the protocol's command" in " ".join(row.details)
    path.write_text(json.dumps({**summary, "command": "python ablation.py --output_dir elsewhere"}))  # 3 seeds too
    assert detection_run(ablation=path)[0].passed is True
    for spelling in ("--lora_r 6 --model_name_or_path outputs/pretrained-clip-tiny-64",
                     "--lora-r=6 --model-name-or-path ./outputs/pretrained-clip-tiny-64"):  # both name the protocol
        path.write_text(json.dumps({**summary, "command": f"python ablation.py {spelling}"}))
        assert detection_run(pretrained_ablation=path)[1].passed is True, spelling
    # an ablation of two modes into the default folder (README: `--modes pin none`) crashed the suite
    del summary["accuracy"]["random"]
    path.write_text(json.dumps(summary))
    row = detection_run(ablation=path)[0]
    assert row.passed is None and "has no unseen-family accuracy for random" in row.value


def test_a_fresh_clone_reads_the_committed_ablation_summaries(tmp_path: Path) -> None:
    from bench_detection import PROTOCOLS, REPO_ROOT, default_summary

    protocol = PROTOCOLS[0]
    outputs, results = tmp_path / "outputs", tmp_path / "results"
    assert default_summary(protocol, outputs, results) == outputs / "ablation-minigenimage" / "ablation.json"
    committed = results / "ablation-minigenimage" / "ablation.json"
    committed.parent.mkdir(parents=True)
    committed.write_text("{}")
    assert default_summary(protocol, outputs, results) == committed  # no run on this machine: the committed copy
    written = outputs / "ablation-minigenimage" / "ablation.json"
    written.parent.mkdir(parents=True)
    written.write_text("{}")
    assert default_summary(protocol, outputs, results) == written  # this machine's run comes first
    # the repository carries the copies the README's detection figures are read from
    for protocol in PROTOCOLS:
        assert (REPO_ROOT / "results" / protocol.default_json.relative_to(REPO_ROOT / "outputs")).is_file()


def test_collect_copies_the_reports_of_every_run_and_nothing_else(tmp_path: Path) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "results"))
    from collect import collect

    outputs = tmp_path / "outputs"
    for name in ("ablation/ablation.json", "ablation/pin-seed0/metrics.json", "ablation/pin-seed0/README.md",
                 "ablation/pin-seed0/model.safetensors", "ablation/pin-seed0/random-clip/README.md",
                 "run/checkpoints/checkpoint-2/metrics.json", "run/train_log.jsonl", "run/metrics.json",
                 "run/plots/roc_curves.png"):
        (outputs / name).parent.mkdir(parents=True, exist_ok=True)
        (outputs / name).write_text(name)
    copies = collect(outputs, tmp_path / "results")
    assert [str(path.relative_to(tmp_path / "results")) for path in copies] == [
        "ablation/ablation.json", "ablation/pin-seed0/README.md", "ablation/pin-seed0/metrics.json",
        "run/metrics.json", "run/train_log.jsonl"]
    assert (tmp_path / "results" / "run" / "train_log.jsonl").read_text() == "run/train_log.jsonl"


def test_collect_never_mixes_two_runs_reports(tmp_path: Path) -> None:
    """A rerun in progress: the ablation removed its summary, the run its metrics.json, and its log restarted. The old
    summary and metrics stood beside the new partial log."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "results"))
    from collect import collect

    outputs, results = tmp_path / "outputs", tmp_path / "results"
    for name in ("ablation/ablation.md", "ablation/pin-seed0/metrics.json", "ablation/pin-seed0/train_log.jsonl",
                 "ablation/none-seed0/metrics.json", "ablation/none-seed0/train_log.jsonl"):
        (outputs / name).parent.mkdir(parents=True, exist_ok=True)
        (outputs / name).write_text("old")
    collect(outputs, results)
    (outputs / "ablation" / "ablation.md").unlink()  # the rerun starts
    (outputs / "ablation" / "pin-seed0" / "metrics.json").unlink()
    (outputs / "ablation" / "pin-seed0" / "train_log.jsonl").write_text("new, partial")
    (outputs / "ablation" / "none-seed0" / "metrics.json").write_text("new")  # a run of the rerun that finished...
    (outputs / "ablation" / "none-seed0" / "train_log.jsonl").write_text("new")
    (outputs / "ablation" / "none-seed0" / "results.md").write_text("new")
    collect(outputs, results)
    # the partial run keeps its old copies together; the finished one has its new ones; the old summary is gone
    assert {p.name: p.read_text() for p in (results / "ablation" / "pin-seed0").iterdir()} == {
        "metrics.json": "old", "train_log.jsonl": "old"}
    assert {p.name: p.read_text() for p in (results / "ablation" / "none-seed0").iterdir()} == {
        "metrics.json": "new", "train_log.jsonl": "new", "results.md": "new"}
    assert not (results / "ablation" / "ablation.md").exists()


def test_collect_leaves_the_files_describing_results_alone(tmp_path: Path) -> None:
    # was: results/README.md (a report file's name, at the top of no run) was deleted on every run
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "results"))
    from collect import collect

    outputs, results = tmp_path / "outputs", tmp_path / "results"
    (outputs / "run").mkdir(parents=True)
    (outputs / "run" / "metrics.json").write_text("{}")
    results.mkdir()
    (results / "README.md").write_text("what results/ holds")
    assert collect(outputs, results) == [results / "run" / "metrics.json"]
    assert (results / "README.md").read_text() == "what results/ holds"


def test_collect_help_copies_nothing(tmp_path: Path) -> None:
    # a copy of the script in a tree of its own: were --help to copy, it would copy into this tree, not the repo's
    (tmp_path / "results").mkdir()
    shutil.copy(Path(__file__).resolve().parents[1] / "results" / "collect.py", tmp_path / "results")
    (tmp_path / "outputs" / "run").mkdir(parents=True)
    (tmp_path / "outputs" / "run" / "metrics.json").write_text("{}")
    done = subprocess.run([sys.executable, str(tmp_path / "results" / "collect.py"), "--help"], capture_output=True,
                          text=True)
    assert done.returncode == 0 and "usage: collect.py" in done.stdout
    assert not (tmp_path / "results" / "run").exists()


def test_ablation_summary_has_the_unseen_family_mean() -> None:
    import ablation

    metrics = {"training": {"generators": ["tconv"]}, "subsets": {"tconv": {"acc": 1.0}, "gan": {"acc": 0.6},
                                                                   "diffusion": {"acc": 0.8}}}
    assert ablation.unseen_mean(metrics) == pytest.approx(0.7)
    assert ablation.mean_std([0.5, 0.7]) == {"mean": pytest.approx(0.6), "std": pytest.approx(0.1414, abs=1e-4),
                                             "values": [0.5, 0.7]}


def test_a_partial_run_keeps_the_full_results_and_a_crash_stays_in_its_row(tmp_path: Path, monkeypatch) -> None:
    import run_all
    from common import Figure

    def crashing(quick: bool) -> list:
        raise ValueError("bad shape | expected 3\ngot 4")

    fine = Figure(name="fine", setup="s", value="1.00×", target="≥ 1×", passed=True)
    monkeypatch.setattr(run_all, "BENCHES", {"fine": lambda quick: [fine], "broken": crashing})
    for name in ("DEFAULT_OUTPUT", "QUICK_OUTPUT", "PARTIAL_OUTPUT"):
        monkeypatch.setattr(run_all, name, tmp_path / name)
    assert run_all.main(["--only", "fine,broken"]) == 2  # a crash: status 2, whatever the targets
    assert run_all.main(["--quick", "--only", "fine"]) == 0
    assert sorted(path.name for path in tmp_path.iterdir()) == ["PARTIAL_OUTPUT"]
    assert run_all.main(["--quick", "--only", "fine,broken"]) == 2
    rows = [line for line in (tmp_path / "PARTIAL_OUTPUT").read_text().splitlines() if line.startswith("| ")]
    assert len(rows) == 3 and rows[2].count(" | ") == 4  # header, fine, broken: five cells each
    assert "error: ValueError: bad shape \\| expected 3 got 4" in rows[2]
    # the header names the command that wrote it, and its links resolve from the file's own folder
    text = (tmp_path / "PARTIAL_OUTPUT").read_text()
    assert "Written by `python bench/run_all.py --quick --only fine,broken`" in text
    links = re.findall(r"\]\(([^)]+)\)", text)
    assert links and all((tmp_path / link).resolve().is_file() for link in links), links


def test_detection_names_the_ablation_it_read_and_an_undefined_std(tmp_path: Path) -> None:
    from ablation import mean_std

    command = "python ablation.py --ablation_seeds 1 --max_steps 2"
    summary = {"command": command,
               "accuracy": {mode: {"unseen": mean_std([value])} for mode, value in (("pin", 0.8), ("random", 0.7),
                                                                                     ("none", 0.75))}}
    path = tmp_path / "ablation.json"
    path.write_text(json.dumps(summary))
    figure, _ = detection_run(ablation=path, pretrained_ablation=tmp_path / "absent.json")
    assert "pin 80.0 ± –" in figure.value and f"written by `{command}`" in figure.details
    # one seed is not the protocol's three: pin "best by 5 points" was judged a pass
    assert figure.passed is None and any("no verdict: the protocol is 3 seeds per mode, this summary has 1" in line
                                         for line in figure.details)
    ten = {"command": "python ablation.py --ablation_seeds 10",
           "accuracy": {mode: {"unseen": mean_std([value] * 10)} for mode, value in (("pin", 0.8), ("random", 0.7),
                                                                                     ("none", 0.75))}}
    path.write_text(json.dumps(ten))
    assert detection_run(ablation=path)[0].passed is None
    path.write_text(json.dumps(summary))
    assert figure.setup.startswith("MiniGenImage ≤ 1.2 unseen-family")  # a summary that records no version
    path.write_text(json.dumps({**summary, "minigenimage_version": "1.3.0"}))
    assert detection_run(ablation=path)[0].setup.startswith("MiniGenImage 1.3.0 unseen-family")
    path.write_text(json.dumps({**summary, "minigenimage_version": None}))  # runs that read none: no version to name
    assert detection_run(ablation=path)[0].setup.startswith("MiniGenImage unseen-family")


def test_a_missed_target_fails_a_full_run_but_not_a_smoke_run(tmp_path: Path, monkeypatch) -> None:
    import run_all
    from common import Figure

    missed = Figure(name="slow", setup="s", value="0.50×", target="≥ 1×", passed=False)
    monkeypatch.setattr(run_all, "BENCHES", {"slow": lambda quick: [missed]})
    for name in ("DEFAULT_OUTPUT", "QUICK_OUTPUT", "PARTIAL_OUTPUT"):
        monkeypatch.setattr(run_all, name, tmp_path / name)
    assert run_all.main([]) == 1
    assert run_all.main(["--quick"]) == 0  # tiny models, few rounds: its numbers mean nothing


@pytest.mark.parametrize("scale", ["absolute", "feature_rms"])
def test_noise_effect_measures_the_margin_shift_of_the_models_own_noise(tiny_clip_dir: Path, scale: str) -> None:
    """`random` noise N(0, s²I) shifts the margin (fake − real) by (w_fake − w_real)·ε: a normal of std
    s·‖w_fake − w_real‖ (times the embedding's RMS with feature_rms), whose median |.| is 0.674 of that std, with
    no lean towards either decision."""
    std = 0.5
    model = PinClipForImageClassification.from_clip(
        str(tiny_clip_dir), noise_mode="random", random_noise_std=std, noise_scale=scale
    )
    pixels = torch.randn(64, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    rng = torch.get_rng_state()
    model.train()
    effect = noise_effect(model, pixels, draws=64, batch_size=16)
    assert model.training and torch.equal(torch.get_rng_state(), rng)  # the caller's mode and RNG are left alone
    weight = model.classifier.weight.detach()
    rms = effect["embedding_rms"] if scale == "feature_rms" else 1.0
    expected_shift = 0.674 * std * rms * float((weight[1] - weight[0]).norm())
    assert effect["shift"] == pytest.approx(expected_shift, rel=0.1)
    assert abs(effect["towards"]) < 0.1 * expected_shift
    assert 0 <= effect["flipped"] <= 1
    assert model.config.inference_noise == "none"  # left as given
    with torch.no_grad():
        model.classifier.bias.copy_(torch.tensor([0.0, 1e3]))  # every margin +1000: no draw flips a decision
    assert noise_effect(model, pixels, draws=4)["flipped"] == 0


def test_a_saved_detector_is_rebuilt_when_the_model_code_changes(tiny_clip_dir, tmp_path):
    """The scan side loads the repository's class, the pipeline side the saved copy: a detector cached before a
    change of modeling_pinclip.py timed two versions of the model against each other."""
    from common import MODEL_CODE, REPO_ROOT, saved_pinclip

    folder = saved_pinclip(tiny_clip_dir, tmp_path / "detector")
    assert all((folder / name).read_bytes() == (REPO_ROOT / name).read_bytes() for name in MODEL_CODE)
    (folder / "modeling_pinclip.py").write_text("# the model code of an earlier version\n")
    (folder / "stale.bin").write_text("left by the earlier build")
    saved_pinclip(tiny_clip_dir, folder)
    assert (folder / "modeling_pinclip.py").read_bytes() == (REPO_ROOT / "modeling_pinclip.py").read_bytes()
    assert not (folder / "stale.bin").exists() and (folder / "config.json").is_file()
    built = (folder / "model.safetensors").stat().st_mtime_ns
    saved_pinclip(tiny_clip_dir, folder)  # current: kept as it is
    assert (folder / "model.safetensors").stat().st_mtime_ns == built


def test_the_accelerator_script_runs_its_whole_path_on_a_cpu(tmp_path: Path) -> None:
    """bench/gpu.sh runs where device time is scarce: its Python side must not fail there for want of a CPU run."""
    import bench_gpu

    output = tmp_path / "gpu_results.md"
    assert bench_gpu.main(["--device", "cpu", "--quick", "--output", str(output)]) == 0
    rows = [line for line in output.read_text().splitlines() if line.startswith("| ") and "---" not in line][1:]
    figures = [row.split(" | ")[0].lstrip("| ") for row in rows]
    assert figures[:3] == ["training-step cost of PiN noise", "inference cost", "compute utilisation"]
    assert any("torch.compile" in figure for figure in figures[3:]) and len(figures) == 5
    assert all(row.split(" | ")[4] in ("pass", "FAIL") for row in rows)


def test_the_training_step_profile_counts_the_operators_the_noise_branch_adds(tmp_path: Path, monkeypatch,
                                                                               capsys) -> None:
    import common
    import profile_training_step

    monkeypatch.setattr(common, "CACHE_DIR", tmp_path)  # the random CLIP is cached here, not in the checkout
    assert profile_training_step.main(["--rounds", "2", "--batch", "2"]) == 0
    rows = {line.split(" | ")[0].lstrip("| "): line.split(" | ") for line in capsys.readouterr().out.splitlines()
            if line.startswith("| pin") or line.startswith("| none")}
    calls = {mode: int(row[1].replace(",", "")) for mode, row in rows.items()}
    assert set(calls) == {"pin", "none"} and calls["pin"] > calls["none"] > 100  # generator, KL, 2nd classifier pass


def test_the_minigenimage_audit_counts_saturated_images_per_split_and_label(tmp_path: Path, monkeypatch,
                                                                            capsys) -> None:
    import numpy as np

    import audit_minigenimage
    from datasets_scripts.minigenimage import build_minigenimage

    monkeypatch.setenv("PINCLIP_CACHE", str(tmp_path))  # the reduced build goes here, not into the shared cache
    assert audit_minigenimage.main(["--reduced", "--high", "200"]) == 0
    rows = [line.split(" | ") for line in capsys.readouterr().out.splitlines() if line.startswith("| train |")]
    assert len(rows) == 1
    _, family, real_share, fake_share, _ = rows[0]
    train = build_minigenimage(reduced=True, show_progress=False)["train"]
    labels = np.array(train["label"])
    hit = np.array([np.asarray(image).max() >= 200 for image in train["image"]])
    assert family == "tconv"
    assert float(real_share) == round(hit[labels == 0].mean(), 3) and float(fake_share) == round(hit[labels == 1].mean(), 3)


def _write_run(run: Path, losses: list[float], accuracies: dict[str, float] | None, noisy: bool = True) -> Path:
    """A train.py folder whose log's clean loss is `losses`; with `noisy` (`pin`, `random`) the total `loss` adds a
    noisy term as large again, as at the start of a real run."""
    run.mkdir(parents=True)
    rows = [{"step": 10 * (i + 1), "loss": 2 * loss if noisy else loss, "clean_loss": loss}
            for i, loss in enumerate(losses)]
    (run / "train_log.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    if accuracies is not None:
        metrics = {"subsets": {name: {"acc": acc} for name, acc in accuracies.items()},
                   "training": {"generators": ["tconv"]}}
        (run / "metrics.json").write_text(json.dumps(metrics))
    return run


def test_bench_scripts_refuse_counts_below_one(capsys) -> None:
    """--tail 0 averaged the whole log and named it the final loss; --images 0 or --draws 0 were tracebacks."""
    import bench_app_concurrency
    import profile_eval_decoding
    import profile_noise_effect
    import profile_training_step
    import training_onset

    for main, argv in ((training_onset.main, ["run", "--tail", "0"]), (training_onset.main, ["run", "--tail", "-5"]),
                       (profile_noise_effect.main, ["model", "--images", "0"]),
                       (profile_noise_effect.main, ["model", "--draws", "0"]),
                       # were: "no median for empty data" and a reshape error, after the models were built
                       (profile_training_step.main, ["--rounds", "0"]), (profile_training_step.main, ["--batch", "0"]),
                       (profile_eval_decoding.main, ["--rounds", "0"]),
                       (bench_app_concurrency.main, ["--images", "0"])):
        with pytest.raises(SystemExit) as exit_:
            main(argv)
        assert exit_.value.code == 2 and "must be at least 1" in capsys.readouterr().err, argv
    with pytest.raises(SystemExit) as exit_:  # was: a ValueError traceback
        profile_training_step.main(["--shape", "vit-b16"])
    assert exit_.value.code == 2 and "invalid choice: 'vit-b16'" in capsys.readouterr().err


def test_training_onset_finds_where_the_loss_leaves_chance_and_where_it_ends(tmp_path: Path, capsys) -> None:
    from training_onset import main, training_onset

    late = _write_run(tmp_path / "late", [1.4, 1.39, 1.2, 1.0, 0.5, 0.3, 0.1], {"tconv": 0.9, "gan": 0.7, "nearest": 0.6})
    onset = training_onset(late, fraction=0.8, tail=2)
    assert onset.onset_step == 40  # 1.0 is the first loss below 0.8 × 1.4 = 1.12
    assert onset.final_loss == pytest.approx(0.2)  # the clean loss, not the total 0.4 of a noisy mode
    assert onset.training_family_acc == pytest.approx(0.9) and onset.unseen_acc == pytest.approx(0.65)
    stuck = _write_run(tmp_path / "stuck", [0.75, 0.75, 0.7], None, noisy=False)  # a `none` run: loss = clean loss
    assert training_onset(stuck).onset_step is None and training_onset(stuck).unseen_acc is None
    assert main([str(late), str(stuck), "--tail", "2"]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith(f"| {tmp_path}")]
    assert rows == [f"| {late} | 40 | 0.200 | 90.0 | 65.0 |", f"| {stuck} | never | 0.725 | – | – |"]
    older = tmp_path / "older"  # a log from before the clean loss was logged: its loss is what there is
    older.mkdir()
    rows = ({"step": 10, "loss": 1.0}, {"step": 20, "loss": 0.5})
    (older / "train_log.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    assert training_onset(older, tail=1).final_loss == 0.5 and training_onset(older).onset_step == 20


def test_training_onset_refuses_a_folder_without_a_training_log(tmp_path: Path, capsys) -> None:
    from training_onset import main

    with pytest.raises(SystemExit):
        main([str(tmp_path)])
    assert "holds no train_log.jsonl: not a train.py output folder" in capsys.readouterr().err
    (tmp_path / "train_log.jsonl").write_text(json.dumps({"step": 10, "lr": 0.001}) + "\n")
    with pytest.raises(SystemExit):
        main([str(tmp_path)])
    assert "logs no training loss" in capsys.readouterr().err


def test_a_failed_memory_probe_says_why(tmp_path: Path) -> None:
    """The probe runs in a child process: its failure was a CalledProcessError quoting the probe's whole source."""
    from bench_size_memory import pipeline_memory

    (tmp_path / "empty").mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / "probe.png")
    with pytest.raises(RuntimeError, match=r"the pipeline probe on empty failed \(exit 1\): ") as error:
        pipeline_memory(tmp_path / "empty", tmp_path / "probe.png")
    assert "config.json" in str(error.value) and "import " not in str(error.value)  # the reason, not the source


def test_a_cached_checkpoint_cut_off_while_written_is_not_reused(tmp_path: Path, monkeypatch) -> None:
    """Was: a folder counted as cached once its config.json existed, which save_pretrained writes before the weights:
    a run killed mid-write left a checkpoint every later run crashed on."""
    import common

    monkeypatch.setattr(common, "CACHE_DIR", tmp_path)

    def killed_after_the_config(folder: Path, **kwargs) -> None:
        folder.mkdir(parents=True)
        (folder / "config.json").write_text("{}")
        raise KeyboardInterrupt

    monkeypatch.setattr("clip_checkpoints.write_random_clip", killed_after_the_config)
    with pytest.raises(KeyboardInterrupt):
        common.random_clip("tiny")
    assert list(tmp_path.iterdir()) == []
    monkeypatch.undo()
    monkeypatch.setattr(common, "CACHE_DIR", tmp_path)
    folder = common.random_clip("tiny")
    assert folder == tmp_path / "clip-tiny-seed0" and (folder / "model.safetensors").is_file()
    assert [path.name for path in tmp_path.iterdir()] == ["clip-tiny-seed0"]
    # a run killed outright (SIGKILL: no `finally`) leaves its partial folder; the next build removes it
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (tmp_path / f"clip-tiny-seed1.partial-{dead.pid}").mkdir()
    (tmp_path / f"clip-tiny-seed1.partial-{os.getpid()}x").mkdir()  # no process id: no run will finish it either
    common.random_clip("tiny", seed=1)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["clip-tiny-seed0", "clip-tiny-seed1"]


def test_a_memory_probe_killed_by_the_kernel_is_named_so(tmp_path: Path, monkeypatch) -> None:
    """Was: the last line of its stderr, a progress bar, given as the reason."""
    import bench_size_memory

    killed = subprocess.CompletedProcess([], -9, stdout="", stderr="Loading weights: 100%|██| 57/57 [00:00<00:00]\n")
    monkeypatch.setattr(bench_size_memory.subprocess, "run", lambda *args, **kwargs: killed)
    with pytest.raises(RuntimeError, match="killed by SIGKILL: likely out of memory$"):
        bench_size_memory.pipeline_memory(tmp_path, tmp_path / "probe.png")


def test_app_concurrency_bench_times_the_three_ways_and_says_their_ratios(tiny_model_dir, capsys) -> None:
    import bench_app_concurrency

    assert bench_app_concurrency.main(["--model", str(tiny_model_dir), "--images", "3", "--concurrency", "2",
                                       "--rounds", "1"]) == 0
    out = capsys.readouterr().out
    for way in ("one at a time", "concurrent", "pooled"):
        assert re.search(rf"^{way}: [\d.]+–[\d.]+ images/s \(median [\d.]+\)$", out, re.MULTILINE), way
    assert re.search(r"concurrent ÷ one at a time: [\d.]+×; concurrent ÷ pooled: [\d.]+×", out)
