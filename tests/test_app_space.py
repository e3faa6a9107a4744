"""space.py: the Space folder (app, requirements, README front matter, model) and its upload, hub client faked."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import space


class FakeHubApi:
    """Records the calls `upload_space` makes instead of talking to the Hub."""

    remote: set[str] = set()  # the files the Space holds

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict]] = []

    def list_repo_files(self, repo_id: str, **kwargs) -> list[str]:
        return sorted(self.remote)

    def create_repo(self, repo_id: str, **kwargs) -> None:
        self.calls.append(("create_repo", {"repo_id": repo_id, **kwargs}))

    def upload_folder(self, **kwargs) -> None:
        assert (Path(kwargs["folder_path"]) / "app.py").is_file()  # the folder exists while it is uploaded
        self.calls.append(("upload_folder", kwargs))


def test_build_space_folder(tiny_model_dir: Path, tmp_path: Path) -> None:
    model_dir = shutil.copytree(tiny_model_dir, tmp_path / "trained")
    (model_dir / "checkpoint-1").mkdir()  # training leftovers in sub-folders stay out of the Space
    for leftover in ("train_log.jsonl", "model.safetensors.tmp"):  # and what a model upload leaves local
        (model_dir / leftover).write_text("local")
    folder = space.build_space(model_dir, tmp_path / "space")
    for name in ("app.py", "configuration_pinclip.py", "corruptions.py", "inference.py", "image_io.py", "labels.py",
                 "modeling_pinclip.py", "preprocessing.py", "requirements.txt", "README.md", "assets/fake_gan.png"):
        assert (folder / name).is_file(), name
    model_files = {path.name for path in (folder / "model").iterdir()}
    assert {"config.json", "model.safetensors", "preprocessor_config.json", "modeling_pinclip.py"} <= model_files
    assert not {"checkpoint-1", "train_log.jsonl", "model.safetensors.tmp"} & model_files
    front = yaml.safe_load((folder / "README.md").read_text().split("---")[1])
    assert front["sdk"] == "gradio" and front["app_file"] == "app.py" and front["sdk_version"]
    requirements = (folder / "requirements.txt").read_text().splitlines()
    assert any(line.startswith("torch") for line in requirements) and any(line.startswith("gradio") for line in requirements)
    assert not any(line.startswith(("pytest", "playwright", "peft")) for line in requirements)


def test_space_readme_names_a_model_given_as_the_working_folder(tiny_model_dir: Path, tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    model_dir = shutil.copytree(tiny_model_dir, tmp_path / "my-detector")
    monkeypatch.chdir(model_dir)
    for given in (".", "../my-detector/"):
        readme = (space.build_space(given, tmp_path / "space") / "README.md").read_text()
        assert "detector `my-detector`" in readme, given


def test_space_app_loads_its_bundled_model(tiny_model_dir: Path, tmp_path: Path) -> None:
    folder = space.build_space(tiny_model_dir, tmp_path / "space")
    # The Space runs `python app.py` in its own folder: with nothing of this repository importable, the copied app
    # must find every module it needs and load `model/` by itself.
    check = (
        "import app\n"
        "model = app.resolve_model(None)\n"
        "detector, problem = app.load_detector(model)\n"
        "assert model == 'model' or model.endswith('/model'), model\n"
        "assert detector is not None and problem == '', problem\n"
        "assert app.example_files()[0][0].startswith(str(__import__('pathlib').Path('assets').resolve()))\n"
        "assert all(m.__file__.startswith(str(__import__('pathlib').Path.cwd())) for m in "
        "(app, __import__('inference'), __import__('image_io'), __import__('preprocessing'), "
        "__import__('modeling_pinclip')))\n"
    )
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    result = subprocess.run([sys.executable, "-c", check], cwd=folder, env=env, capture_output=True, text=True,
                            timeout=240)
    assert result.returncode == 0, result.stderr[-2000:]


def test_upload_space_uses_the_hub_client(tiny_model_dir: Path, tmp_path: Path) -> None:
    folder = space.build_space(tiny_model_dir, tmp_path / "space")
    api = FakeHubApi()
    url = space.upload_space(folder, "someone/pinclip-demo", api=api)
    assert url == "https://huggingface.co/spaces/someone/pinclip-demo"
    (create, created), (upload, uploaded) = api.calls
    assert create == "create_repo" and created["repo_type"] == "space" and created["space_sdk"] == "gradio"
    assert upload == "upload_folder" and uploaded["repo_type"] == "space" and uploaded["repo_id"] == "someone/pinclip-demo"


def test_an_upload_never_deletes_files_of_a_space_it_did_not_write(tiny_model_dir: Path, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch,
                                                                   capsys: pytest.CaptureFixture) -> None:
    """A --repo_id naming another of the user's Spaces: its own files went in the upload's deletions."""
    class OtherSpace(FakeHubApi):
        remote = {".gitattributes", "README.md", "app.py", "my_app/train.py", "data/my_results.csv"}

    monkeypatch.setattr(space, "HfApi", OtherSpace)
    with pytest.raises(SystemExit) as exit_:
        space.main(["--model", str(tiny_model_dir), "--output", str(tmp_path / "space"), "--repo_id",
                    "someone/my-other-space", "--upload"])
    error = capsys.readouterr().err
    assert exit_.value.code == 2 and "holds files space.py does not write (data/my_results.csv, my_app/train.py)" in error
    api = OtherSpace()
    with pytest.raises(ValueError, match="holds files space.py does not write"):
        space.push_space(tmp_path / "space", "someone/my-other-space", api)
    assert api.calls == []  # nothing uploaded, nothing deleted


def test_upload_needs_a_full_space_id_before_the_build(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """A bare NAME went up as the Space USER/NAME while the printed address was spaces/NAME."""
    for repo_id in ("pinclip-demo", "a/b/c"):
        with pytest.raises(SystemExit) as exit_:
            space.main(["--model", str(tmp_path / "not-built"), "--repo_id", repo_id, "--upload"])
        assert exit_.value.code == 2 and "--upload needs --repo_id USER/NAME" in capsys.readouterr().err


def test_a_space_uploaded_again_holds_exactly_the_folder_built(tiny_model_dir: Path, tmp_path: Path) -> None:
    """An earlier upload's files stayed: old whole weights beside a new sharded save were what the Space loaded."""
    from fnmatch import fnmatch

    class HubWithFiles(FakeHubApi):
        remote = {".gitattributes", "model/model.safetensors", "assets/removed_example.png", "app.py"}

        def upload_folder(self, **kwargs) -> None:  # as the Hub commits: deletions by pattern, then the files
            super().upload_folder(**kwargs)
            root = Path(kwargs["folder_path"])
            files = {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}
            patterns = kwargs.get("delete_patterns") or []
            patterns = [patterns] if isinstance(patterns, str) else patterns
            kept = {f for f in self.remote if f == ".gitattributes" or not any(fnmatch(f, pat) for pat in patterns)}
            self.remote = kept | files

    folder = space.build_space(tiny_model_dir, tmp_path / "space")
    api = HubWithFiles()
    space.push_space(folder, "someone/pinclip-demo", api)
    built = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}
    assert api.remote == built | {".gitattributes"}


def test_build_space_refuses_a_folder_without_a_model(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="python train.py"):
        space.build_space(tmp_path, tmp_path / "space")


def test_build_space_refuses_a_model_its_app_cannot_load(tiny_model_dir: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken-model"
    shutil.copytree(tiny_model_dir, broken)
    (broken / "model.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(ValueError, match="the Space's app could not load this model"):
        space.build_space(broken, tmp_path / "space")
    assert not (tmp_path / "space").exists()


def test_build_space_replaces_only_its_own_folders(tiny_model_dir: Path, tmp_path: Path) -> None:
    model_dir = shutil.copytree(tiny_model_dir, tmp_path / "trained")
    with pytest.raises(ValueError, match="would delete the model"):
        space.build_space(model_dir, model_dir)
    with pytest.raises(ValueError, match="would delete the model"):
        space.build_space(model_dir, tmp_path)  # the folder that holds the model
    assert (model_dir / "model.safetensors").is_file()
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "todo.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="not a Space folder"):
        space.build_space(model_dir, tmp_path / "notes")
    assert (tmp_path / "notes" / "todo.txt").read_text() == "mine"
    folder = space.build_space(model_dir, tmp_path / "space")
    (folder / "model" / "stale.bin").write_text("weights of an earlier build")
    (folder / "__pycache__").mkdir()  # `python space/app.py` was tried
    assert not (space.build_space(model_dir, folder) / "model" / "stale.bin").exists()  # a previous Space is rebuilt
    # ... but not once it holds anything else: a clone of the Space repository, the user's notes
    for foreign in (".git", "my_notes.md"):
        (folder / foreign).mkdir()
        with pytest.raises(FileExistsError, match=f"not a Space folder written before: it holds .*{foreign}"):
            space.build_space(model_dir, folder)
        assert (folder / foreign).is_dir() and (folder / "app.py").is_file()
        (folder / foreign).rmdir()


def test_build_space_refuses_the_working_folder_and_its_parents(tiny_model_dir: Path, tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    # a checkout with a model/ folder (where app.py looks first) once passed for a Space folder and was deleted
    folder = space.build_space(tiny_model_dir, tmp_path / "checkout")  # only Space entries, as a checkout may hold
    monkeypatch.chdir(folder)
    for output in (folder, Path("."), tmp_path):
        with pytest.raises(ValueError, match="holds the current folder"):
            space.build_space(tiny_model_dir, output)
    assert (folder / "app.py").is_file() and (folder / "model" / "config.json").is_file()


def test_build_space_fills_an_existing_empty_folder(tiny_model_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "space").mkdir()  # e.g. made by `mkdir` or a fresh `git clone` of the Space repo would not be empty
    assert (space.build_space(tiny_model_dir, tmp_path / "space") / "app.py").is_file()


def test_build_space_refuses_a_folder_with_an_app_but_no_model(tiny_model_dir: Path, tmp_path: Path) -> None:
    project = tmp_path / "someone-elses-app"
    project.mkdir()
    (project / "app.py").write_text("print('mine')\n")
    with pytest.raises(FileExistsError, match="not a Space folder"):
        space.build_space(tiny_model_dir, project)
    assert (project / "app.py").read_text() == "print('mine')\n"


def test_build_space_leaves_hidden_files_of_the_model_folder_out(tiny_model_dir: Path, tmp_path: Path) -> None:
    model_dir = shutil.copytree(tiny_model_dir, tmp_path / "trained")
    (model_dir / ".DS_Store").write_text("finder")
    folder = space.build_space(model_dir, tmp_path / "space")
    assert not (folder / "model" / ".DS_Store").exists() and (folder / "model" / "config.json").is_file()


def test_space_requirements_keep_pins_and_add_what_is_missing(tmp_path: Path) -> None:
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("torch==2.13.0\nHuggingface-Hub>=2.4\nPillow>=10\npytest\n")
    lines = space.runtime_requirements(requirements)
    assert lines[:3] == ["torch==2.13.0", "Huggingface-Hub>=2.4", "Pillow>=10"]  # pins kept, whatever the spelling
    assert sorted(lines[3:]) == sorted(set(space.RUNTIME_PACKAGES) - {"torch", "huggingface_hub", "pillow"})
    assert "pytest" not in lines


def test_upload_space_keeps_a_private_space_private(tiny_model_dir: Path, tmp_path: Path) -> None:
    api = FakeHubApi()
    space.upload_space(space.build_space(tiny_model_dir, tmp_path / "space"), "someone/demo", api=api, private=True)
    assert api.calls[0][1]["private"] is True


def test_upload_without_a_repo_id_is_refused_before_any_work(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exit_:
        space.main(["--model", str(tmp_path / "missing"), "--output", str(tmp_path / "space"), "--upload"])
    assert exit_.value.code == 2 and "--upload needs --repo_id" in capsys.readouterr().err
    assert not (tmp_path / "space").exists()


@pytest.mark.parametrize("title", ["PiN-CLIP: AI image detector", "[beta] detector", "Detector #2", "yes", "No"])
def test_space_title_stays_the_text_given(title: str) -> None:
    # Unquoted, these break the front matter (': ', '[') or turn into something else (a comment, a boolean).
    front = yaml.safe_load(space.space_readme(title, "my-detector").split("---")[1])
    assert front["title"] == title and front["sdk"] == "gradio"


def test_space_asks_for_the_python_its_requirements_need(tiny_model_dir: Path, tmp_path: Path) -> None:
    # The Hub runs Spaces on Python 3.10 unless the front matter says otherwise; transformers 5.21+ needs 3.11.
    folder = space.build_space(tiny_model_dir, tmp_path / "space")
    front = yaml.safe_load((folder / "README.md").read_text().split("---")[1])
    assert front["python_version"] == "3.11" and isinstance(front["python_version"], str)
    assert len(front["short_description"]) <= 60  # the Hub's limit


def test_space_cli_reports_user_errors_without_a_traceback(tiny_model_dir: Path, tmp_path: Path,
                                                           capsys: pytest.CaptureFixture) -> None:
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "todo.txt").write_text("mine")
    for argv, message in (
        (["--model", str(tmp_path / "missing"), "--output", str(tmp_path / "space")], "not a saved model folder"),
        (["--model", str(tiny_model_dir), "--output", str(tmp_path / "notes")], "not a Space folder"),
    ):
        with pytest.raises(SystemExit) as exit_:
            space.main(argv)
        error = capsys.readouterr().err
        assert exit_.value.code == 2 and message in error and "Traceback" not in error
    assert (tmp_path / "notes" / "todo.txt").read_text() == "mine"


def test_upload_that_cannot_reach_the_hub_is_one_line_and_bad_input_creates_no_space(
        tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    created = []

    class OfflineHubApi(FakeHubApi):
        def create_repo(self, repo_id: str, **kwargs) -> None:
            created.append(repo_id)
            raise ConnectionError("offline mode is enabled")

    monkeypatch.setattr(space, "HfApi", OfflineHubApi)
    with pytest.raises(SystemExit) as exit_:  # a misspelt --model: refused before the Hub is asked for a Space
        space.main(["--model", str(tmp_path / "typo"), "--output", str(tmp_path / "s"), "--repo_id", "a/b", "--upload"])
    assert exit_.value.code == 2 and created == []
    argv = ["--model", str(tiny_model_dir), "--output", str(tmp_path / "space"), "--repo_id", "someone/demo", "--upload"]
    with pytest.raises(SystemExit) as exit_:
        space.main(argv)
    assert exit_.value.code == 2 and "cannot create the Space someone/demo on the Hub (offline" in capsys.readouterr().err

    class DroppingHubApi(FakeHubApi):
        def upload_folder(self, **kwargs) -> None:
            raise ConnectionError("connection reset")

    monkeypatch.setattr(space, "HfApi", DroppingHubApi)
    with pytest.raises(SystemExit) as exit_:
        space.main(argv)
    assert exit_.value.code == 1 and "failed (connection reset); the folder is complete" in capsys.readouterr().err
    assert (tmp_path / "space" / "app.py").is_file()


def test_a_build_stopped_midway_leaves_the_earlier_space_and_a_link_to_one_rebuilds_it(
        tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    folder = space.build_space(tiny_model_dir, tmp_path / "space")
    before = sorted(path.relative_to(folder) for path in folder.rglob("*"))
    copy = shutil.copy2

    def disk_full_at_the_weights(source, destination, **kwargs):
        if Path(source).name == "model.safetensors":
            raise OSError(28, "No space left on device")
        return copy(source, destination, **kwargs)

    monkeypatch.setattr(shutil, "copy2", disk_full_at_the_weights)
    with pytest.raises(SystemExit) as exit_:  # was a traceback, and a half-written folder a rerun refused
        space.main(["--model", str(tiny_model_dir), "--output", str(folder)])
    assert exit_.value.code == 2 and "No space left on device" in capsys.readouterr().err
    monkeypatch.undo()
    assert sorted(path.relative_to(folder) for path in folder.rglob("*")) == before
    assert [path.name for path in tmp_path.iterdir()] == ["space"]  # no build folder left beside it
    (tmp_path / "link").symlink_to(folder, target_is_directory=True)  # was "Cannot call rmtree on a symbolic link"
    assert space.main(["--model", str(tiny_model_dir), "--output", str(tmp_path / "link")]) == 0
    assert (tmp_path / "link").is_symlink() and sorted(path.relative_to(folder) for path in folder.rglob("*")) == before
