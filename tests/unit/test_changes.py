"""`modelci.changes.detect()` on real git repositories: every reason, renames, moves, deletions,
root and merge commits, the default base, shallow clones, uncommitted work and the spec cache;
and a few runs of `modelci changed` end to end."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from modelci import git
from modelci.changes import CACHE_FILE, detect
from modelci.errors import GitError
from tests.support.cli import CliResult
from tests.support.repos import GitRepo, add_model

Run = Callable[..., CliResult]
MakeRepo = Callable[..., GitRepo]

IGNORE = ".modelci/\n"


def changes(repo: GitRepo, **options: Any) -> dict[str, Any]:
    """detect()'s answer as JSON, with no MODELCI_* variables unless given."""
    options.setdefault("environ", {})
    return detect(repo.root, **options).to_json()


def by_model(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {entry["model"]: entry for entry in report["changed"]}


@pytest.fixture
def examples(git_repo: MakeRepo) -> GitRepo:
    """The example repository (models churn and price) committed once, plus one commit that
    touches no model, so that HEAD has a parent."""
    repo = git_repo(examples=True)
    repo.write("NOTES.md", "notes\n")
    repo.commit("notes")
    return repo


@pytest.fixture
def plain(git_repo: MakeRepo) -> GitRepo:
    """Models alpha and beta (no explicit names, no depends_on) and a shared folder."""
    repo = git_repo()
    repo.write(".gitignore", IGNORE)
    repo.write("modelci.toml", '[project]\nshared = ["lib/common/**"]\n')
    add_model(repo, "models/alpha")
    add_model(repo, "models/beta")
    repo.write("lib/common/util.py", "X = 1\n")
    repo.write("README.md", "readme\n")
    repo.commit("two models")
    return repo


# --- the reasons -----------------------------------------------------------------------------


def test_a_file_in_the_model_folder(examples: GitRepo) -> None:
    examples.write("models/churn/train.py", "print('accuracy=0.9')\n")
    head = examples.commit("tune churn")
    report = changes(examples)
    assert report == {
        "base": examples.sha("HEAD^"),
        "head": head,
        "changed": [
            {
                "model": "churn",
                "path": "models/churn",
                "reasons": ["files"],
                "files": ["models/churn/train.py"],
            }
        ],
        "deleted": [],
        "uncommitted": [],
    }


def test_a_file_deeper_in_the_model_folder(examples: GitRepo) -> None:
    examples.write("models/price/tests/golden.jsonl", "{}\n")
    examples.commit()
    assert by_model(changes(examples)) == {
        "price": {
            "model": "price",
            "path": "models/price",
            "reasons": ["files"],
            "files": ["models/price/tests/golden.jsonl"],
        },
    }


def test_the_spec_itself(examples: GitRepo) -> None:
    spec = examples.root / "models/price/model.toml"
    spec.write_text(spec.read_text().replace("alpha = 1.0", "alpha = 2.0"))
    examples.commit()
    assert changes(examples)["changed"] == [
        {
            "model": "price",
            "path": "models/price",
            "reasons": ["spec"],
            "files": ["models/price/model.toml"],
        },
    ]


def test_depends_on_data_glob_touches_only_its_model(examples: GitRepo) -> None:
    examples.write("data/churn/train.csv", "customer_id,y\n1,0\n")
    examples.commit()
    assert changes(examples)["changed"] == [
        {
            "model": "churn",
            "path": "models/churn",
            "reasons": ["depends_on"],
            "files": ["data/churn/train.csv"],
        },
    ]


def test_depends_on_glob_shared_by_two_models(examples: GitRepo) -> None:
    examples.write("lib/features/schema.py", "COLUMNS = []\n")
    examples.write("lib/features/deep/new.py", "Y = 2\n")
    examples.commit()
    changed = by_model(changes(examples))
    assert sorted(changed) == ["churn", "price"]
    for entry in changed.values():
        assert entry["reasons"] == ["depends_on"]
        assert entry["files"] == ["lib/features/deep/new.py", "lib/features/schema.py"]


def test_depends_on_glob_does_not_reach_other_files(examples: GitRepo) -> None:
    # data/churn/*.csv covers neither a sub folder nor another extension
    examples.write("data/churn/old/train.csv", "a\n")
    examples.write("data/churn/README.txt", "a\n")
    examples.write("lib/featuresx/a.py", "a\n")
    examples.commit()
    assert changes(examples)["changed"] == []


def test_reasons_come_in_a_fixed_order(examples: GitRepo) -> None:
    examples.write("data/churn/test.csv", "customer_id,y\n")
    examples.write("models/churn/train.py", "pass\n")
    spec = examples.root / "models/churn/model.toml"
    spec.write_text(spec.read_text().replace("seed = 42", "seed = 7"))
    examples.commit()
    entry = by_model(changes(examples))["churn"]
    assert entry["reasons"] == ["spec", "files", "depends_on"]
    assert entry["files"] == [
        "data/churn/test.csv",
        "models/churn/model.toml",
        "models/churn/train.py",
    ]


def test_shared_marks_every_model(plain: GitRepo) -> None:
    add_model(plain, "models/gamma", depends_on=["data/gamma/**"])
    plain.commit("third model")
    plain.write("lib/common/util.py", "X = 2\n")
    plain.commit("shared change")
    report = changes(plain)
    assert report["changed"] == [
        {
            "model": name,
            "path": f"models/{name}",
            "reasons": ["shared"],
            "files": ["lib/common/util.py"],
        }
        for name in ("alpha", "beta", "gamma")
    ]
    assert report["deleted"] == []


def test_shared_from_the_environment(examples: GitRepo) -> None:
    examples.write("docs/index.md", "docs\n")
    examples.commit()
    assert changes(examples)["changed"] == []
    report = changes(examples, environ={"MODELCI_PROJECT_SHARED": "docs/**"})
    assert {e["model"]: e["reasons"] for e in report["changed"]} == {
        "churn": ["shared"],
        "price": ["shared"],
    }


def test_shared_and_own_files_together(plain: GitRepo) -> None:
    plain.write("lib/common/new.py", "Y = 1\n")
    plain.write("models/alpha/train.py", "pass\n")
    plain.commit()
    changed = by_model(changes(plain))
    assert changed["alpha"]["reasons"] == ["files", "shared"]
    assert changed["alpha"]["files"] == ["lib/common/new.py", "models/alpha/train.py"]
    assert changed["beta"]["reasons"] == ["shared"]


def test_a_file_outside_every_model_and_glob_changes_nothing(plain: GitRepo) -> None:
    plain.write("README.md", "changed\n")
    plain.write("lib/other/x.py", "x\n")
    plain.write("models/notes.txt", "beside the models, in none\n")
    head = plain.commit()
    assert changes(plain) == {
        "base": plain.sha("HEAD^"),
        "head": head,
        "changed": [],
        "deleted": [],
        "uncommitted": [],
    }


def test_a_model_toml_outside_the_models_globs_is_ignored(plain: GitRepo) -> None:
    add_model(plain, "tools/helper")
    plain.write("tools/helper/train.py", "changed\n")
    plain.commit()
    report = changes(plain)
    assert report["changed"] == []
    plain.write("tools/helper/train.py", "changed again\n")
    plain.commit()
    assert changes(plain)["changed"] == []


def test_project_models_globs_decide_what_a_model_is(plain: GitRepo) -> None:
    add_model(plain, "tools/helper")
    plain.commit("not a model yet")
    plain.write("modelci.toml", '[project]\nmodels = ["models/*", "tools/*"]\n')
    plain.commit("now it is")
    changed = by_model(changes(plain))
    assert sorted(changed) == ["helper"]
    assert changed["helper"]["reasons"][0] == "added"
    assert changed["helper"]["path"] == "tools/helper"


# --- renames, moves, additions and deletions ---------------------------------------------------


def test_folder_renamed_with_git_mv(plain: GitRepo) -> None:
    plain.git("mv", "models/alpha", "models/omega")
    plain.commit("rename")
    report = changes(plain)
    assert [e["model"] for e in report["changed"]] == ["omega"]
    entry = report["changed"][0]
    assert entry["path"] == "models/omega"
    assert entry["reasons"][0] == "renamed"
    assert "added" not in entry["reasons"]
    assert entry["renamed_from"] == "alpha"
    assert report["deleted"] == []


def test_folder_renamed_keeps_an_explicit_name(examples: GitRepo) -> None:
    examples.git("mv", "models/churn", "models/attrition")
    examples.commit("move")
    report = changes(examples)
    assert report["deleted"] == []
    entry = by_model(report)["churn"]
    assert entry["path"] == "models/attrition"
    assert entry["reasons"][0] == "renamed"
    assert entry["renamed_from"] == "churn"
    assert "price" not in by_model(report)


def test_model_renamed_in_place(examples: GitRepo) -> None:
    spec = examples.root / "models/churn/model.toml"
    spec.write_text(spec.read_text().replace('name = "churn"', 'name = "attrition"'))
    examples.commit("rename in place")
    report = changes(examples)
    assert report["deleted"] == []
    assert [e["model"] for e in report["changed"]] == ["attrition"]
    entry = report["changed"][0]
    assert entry["path"] == "models/churn"
    assert entry["reasons"] == ["renamed", "spec"]
    assert entry["renamed_from"] == "churn"


def test_moved_folder_with_a_rewritten_spec_is_paired_by_name(examples: GitRepo) -> None:
    examples.git("mv", "models/churn", "models/attrition")
    examples.write(
        "models/attrition/model.toml",
        '[model]\nname = "churn"\ndescription = "rewritten from scratch, nothing alike"\n'
        'depends_on = ["lib/features/**"]\n\n[train]\nentrypoint = "fit.py"\n'
        "hyperparameters = { n_estimators = 500, depth = 9, eta = 0.3 }\n",
    )
    examples.commit("move and rewrite")
    # the test only means something if git did not pair the two spec files itself
    raw = examples.git("diff", "--name-status", "-M", "HEAD^", "HEAD")
    assert "D\tmodels/churn/model.toml" in raw.splitlines()
    assert "A\tmodels/attrition/model.toml" in raw.splitlines()
    report = changes(examples)
    assert report["deleted"] == []
    assert [e["model"] for e in report["changed"]] == ["churn"]
    entry = report["changed"][0]
    assert entry["path"] == "models/attrition"
    assert entry["reasons"][0] == "renamed"
    assert "added" not in entry["reasons"]
    assert entry["renamed_from"] == "churn"


def test_folder_moved_under_new_project_globs(examples: GitRepo) -> None:
    examples.git("mv", "models", "ml")
    examples.write("modelci.toml", '[project]\nmodels = ["ml/*"]\n')
    examples.commit("models/ -> ml/")
    report = changes(examples)
    assert report["deleted"] == []
    changed = by_model(report)
    assert sorted(changed) == ["churn", "price"]
    assert changed["churn"]["path"] == "ml/churn"
    assert changed["churn"]["reasons"][0] == "renamed"
    assert changed["churn"]["renamed_from"] == "churn"


def test_deleted_model(examples: GitRepo) -> None:
    examples.git("rm", "-r", "-q", "models/price")
    examples.commit("drop price")
    report = changes(examples)
    assert report["deleted"] == ["price"]
    assert report["changed"] == []


def test_deleted_model_is_never_changed_even_when_its_globs_change(examples: GitRepo) -> None:
    examples.git("rm", "-r", "-q", "models/price")
    examples.write("data/price/train.csv", "id,y\n")
    examples.commit("drop price and its data")
    report = changes(examples)
    assert report["deleted"] == ["price"]
    assert report["changed"] == []


def test_folder_moved_out_of_the_models_globs_is_deleted(plain: GitRepo) -> None:
    (plain.root / "attic").mkdir()
    plain.git("mv", "models/beta", "attic/beta")
    plain.commit()
    report = changes(plain)
    assert report["deleted"] == ["beta"]
    assert report["changed"] == []


def test_added_model(plain: GitRepo) -> None:
    add_model(plain, "models/gamma")
    plain.commit("add gamma")
    report = changes(plain)
    assert report["deleted"] == []
    assert report["changed"] == [
        {
            "model": "gamma",
            "path": "models/gamma",
            "reasons": ["added", "spec", "files"],
            "files": ["models/gamma/model.toml", "models/gamma/train.py"],
        },
    ]


def test_added_model_with_an_explicit_name(plain: GitRepo) -> None:
    plain.write("models/g/model.toml", '[model]\nname = "gamma"\n[train]\nentrypoint = "t.py"\n')
    plain.commit()
    changed = by_model(changes(plain))
    assert sorted(changed) == ["gamma"]
    assert changed["gamma"]["path"] == "models/g"
    assert changed["gamma"]["reasons"][0] == "added"


def test_spec_removed_but_folder_kept_is_deleted(plain: GitRepo) -> None:
    plain.git("rm", "-q", "models/beta/model.toml")
    plain.commit()
    report = changes(plain)
    assert report["deleted"] == ["beta"]
    assert report["changed"] == []


# --- which commits are compared ----------------------------------------------------------------


def test_root_commit_adds_every_model(git_repo: MakeRepo) -> None:
    repo = git_repo(examples=True)
    report = changes(repo)
    assert report == {
        "base": None,
        "head": repo.sha(),
        "changed": [
            {"model": "churn", "path": "models/churn", "reasons": ["added"], "files": []},
            {"model": "price", "path": "models/price", "reasons": ["added"], "files": []},
        ],
        "deleted": [],
        "uncommitted": [],
    }


def test_explicit_base_and_head(examples: GitRepo) -> None:
    first = examples.sha("HEAD~1")
    examples.write("models/churn/train.py", "pass\n")
    middle = examples.commit()
    examples.write("models/price/train.py", "pass\n")
    last = examples.commit()
    report = changes(examples, base=first)
    assert (report["base"], report["head"]) == (first, last)
    assert sorted(by_model(report)) == ["churn", "price"]
    report = changes(examples, base=first, head=middle)
    assert (report["base"], report["head"]) == (first, middle)
    assert sorted(by_model(report)) == ["churn"]
    assert changes(examples, base="HEAD", head="HEAD")["changed"] == []


def test_merge_commit_is_compared_with_its_first_parent(examples: GitRepo) -> None:
    examples.git("checkout", "-q", "-b", "feature")
    examples.write("data/price/train.csv", "id,y\n1,2\n")
    examples.commit("feature: new price data")
    examples.git("checkout", "-q", "main")
    examples.write("models/churn/train.py", "pass\n")
    main_side = examples.commit("main: churn")
    examples.git("merge", "-q", "--no-ff", "-m", "merge feature", "feature")
    assert len(examples.git("rev-list", "--parents", "-n", "1", "HEAD").split()) == 3
    report = changes(examples)
    assert report["base"] == main_side
    assert report["changed"] == [
        {
            "model": "price",
            "path": "models/price",
            "reasons": ["depends_on"],
            "files": ["data/price/train.csv"],
        },
    ]


def test_default_base_uses_the_deployed_ancestor(examples: GitRepo) -> None:
    deployed = examples.sha()
    examples.write("models/churn/train.py", "pass\n")
    examples.commit()
    examples.write("models/price/train.py", "pass\n")
    head = examples.commit()
    asked: list[str] = []

    def last_deployed(head_sha: str) -> str:
        asked.append(head_sha)
        return deployed

    report = changes(examples, default_base=last_deployed)
    assert asked == [head]
    assert report["base"] == deployed
    assert sorted(by_model(report)) == ["churn", "price"]


def test_default_base_given_short_is_reported_in_full(examples: GitRepo) -> None:
    deployed = examples.sha()
    examples.write("models/churn/train.py", "pass\n")
    examples.commit()
    report = changes(examples, default_base=lambda _head: deployed[:10])
    assert report["base"] == deployed


def test_default_base_that_is_not_an_ancestor_falls_back_to_head_parent(
    examples: GitRepo,
) -> None:
    examples.git("checkout", "-q", "-b", "elsewhere")
    examples.write("models/price/train.py", "pass\n")
    elsewhere = examples.commit("not on main")
    examples.git("checkout", "-q", "main")
    examples.write("models/churn/train.py", "pass\n")
    examples.commit()
    report = changes(examples, default_base=lambda _head: elsewhere)
    assert report["base"] == examples.sha("HEAD^")
    assert sorted(by_model(report)) == ["churn"]


@pytest.mark.parametrize("deployed", ["0" * 40, "not-a-revision", None, ""])
def test_unknown_default_base_falls_back_to_head_parent(
    examples: GitRepo, deployed: str | None
) -> None:
    examples.write("models/churn/train.py", "pass\n")
    examples.commit()
    report = changes(examples, default_base=lambda _head: deployed)
    assert report["base"] == examples.sha("HEAD^")
    assert sorted(by_model(report)) == ["churn"]


def test_default_base_is_not_asked_when_base_is_given(examples: GitRepo) -> None:
    def never(_head: str) -> str:
        raise AssertionError("default_base must not be called when base is given")

    report = changes(examples, base="HEAD~1", default_base=never)
    assert report["base"] == examples.sha("HEAD~1")


def test_bad_revisions_raise_git_error(examples: GitRepo) -> None:
    with pytest.raises(GitError, match="'nope'") as raised:
        detect(examples.root, base="nope", environ={})
    assert raised.value.exit_code == 2
    with pytest.raises(GitError, match="'HEAD~9'"):
        detect(examples.root, head="HEAD~9", environ={})


# --- shallow clones ----------------------------------------------------------------------------


@pytest.fixture
def shallow(examples: GitRepo, tmp_path: Path) -> GitRepo:
    """A depth-1 clone of a repository with five commits."""
    for n in range(3):
        examples.write("models/churn/train.py", f"print({n})\n")
        examples.commit(f"commit {n}")
    clone = tmp_path / "shallow"
    subprocess.run(
        ["git", "clone", "-q", "--depth", "1", f"file://{examples.root}", str(clone)],
        check=True,
        capture_output=True,
    )
    repo = GitRepo(clone)
    assert repo.git("rev-parse", "--is-shallow-repository") == "true"
    return repo


def test_shallow_clone_lacking_the_base(shallow: GitRepo, modelci: Run) -> None:
    with pytest.raises(GitError, match="git fetch --deepen"):
        detect(shallow.root, base="HEAD~3", environ={})
    result = modelci("-C", shallow.root, "changed", "--base", "HEAD~3", "--json")
    assert result.code == 2
    error = result.json()["error"]
    assert error["type"] == "GitError"
    assert "HEAD~3" in error["message"]
    assert "git fetch --deepen" in error["message"]
    result = modelci("-C", shallow.root, "changed", "--base", "HEAD~3")
    assert result.code == 2
    assert "git fetch --deepen" in result.stderr
    assert result.stdout == ""


def test_shallow_clone_whose_head_has_no_parent(shallow: GitRepo, modelci: Run) -> None:
    with pytest.raises(GitError, match="git fetch --deepen"):
        detect(shallow.root, environ={})
    # a model last deployed from a commit the clone lacks: fetch more, not build everything
    with pytest.raises(GitError, match="churn was last deployed from 0123456789ab"):
        detect(shallow.root, environ={}, deployed=lambda _h: {"churn": "0123456789ab" * 3 + "0123"})
    # an empty registry: every model is built, with no need of history
    report = changes(shallow, deployed=lambda _h: {})
    assert sorted(by_model(report)) == ["churn", "price"]
    # no registry at all: `changed` asks what head touched, and cannot tell
    result = modelci("-C", shallow.root, "changed", "--json")
    assert result.code == 2
    assert "git fetch --deepen" in result.json()["error"]["message"]
    # an explicit base that the clone holds still works
    result = modelci("-C", shallow.root, "changed", "--base", "HEAD", "--json")
    assert result.code == 0, result.stdout
    assert result.json()["changed"] == []


def test_deeper_clone_finds_the_parent(examples: GitRepo, tmp_path: Path) -> None:
    examples.write("models/price/train.py", "pass\n")
    examples.commit()
    clone = tmp_path / "deeper"
    subprocess.run(
        ["git", "clone", "-q", "--depth", "2", f"file://{examples.root}", str(clone)],
        check=True,
        capture_output=True,
    )
    report = changes(GitRepo(clone))
    assert report["base"] == examples.sha("HEAD^")
    assert sorted(by_model(report)) == ["price"]


# --- uncommitted work --------------------------------------------------------------------------


def test_uncommitted_changes_are_listed_apart(examples: GitRepo) -> None:
    examples.write("models/churn/train.py", "not committed\n")  # tracked, modified
    examples.write("models/price/notes.txt", "untracked\n")
    report = changes(examples)
    assert report["changed"] == []  # HEAD only added NOTES.md
    assert report["uncommitted"] == ["churn", "price"]


def test_uncommitted_changes_are_not_the_commits(examples: GitRepo) -> None:
    examples.write("models/churn/train.py", "committed\n")
    examples.commit()
    examples.write("models/churn/train.py", "and changed again\n")
    examples.write("data/price/extra.csv", "id\n")
    report = changes(examples)
    assert by_model(report)["churn"]["files"] == ["models/churn/train.py"]
    assert sorted(by_model(report)) == ["churn"]
    assert report["uncommitted"] == ["churn", "price"]


def test_staged_and_removed_files_count_as_uncommitted(examples: GitRepo) -> None:
    examples.write("lib/features/new.py", "staged\n")
    examples.git("add", "lib/features/new.py")
    assert changes(examples)["uncommitted"] == ["churn", "price"]
    examples.git("reset", "-q")
    (examples.root / "lib/features/new.py").unlink()
    (examples.root / "data/churn/test.csv").unlink()
    assert changes(examples)["uncommitted"] == ["churn"]


def test_uncommitted_shared_change_marks_every_model(plain: GitRepo) -> None:
    plain.write("lib/common/util.py", "X = 3\n")
    assert changes(plain)["uncommitted"] == ["alpha", "beta"]


def test_untracked_new_folder_under_a_glob(plain: GitRepo) -> None:
    # git lists a wholly untracked folder as the folder, not file by file
    plain.write("lib/common/new/helper.py", "Y = 1\n")
    assert changes(plain)["uncommitted"] == ["alpha", "beta"]


def test_untracked_new_data_folder_under_a_depends_on_glob(git_repo: MakeRepo) -> None:
    repo = git_repo()
    repo.write(".gitignore", IGNORE)
    add_model(repo, "models/alpha", depends_on=["data/alpha/*.csv"])
    repo.commit()
    repo.write("data/alpha/train.csv", "a\n")  # data/ itself is untracked
    assert changes(repo)["uncommitted"] == ["alpha"]


def test_uncommitted_work_outside_models_is_not_listed(plain: GitRepo) -> None:
    plain.write("README.md", "edited\n")
    plain.write("scratch/x.py", "untracked\n")
    assert changes(plain)["uncommitted"] == []


def test_uncommitted_only_when_head_is_head(examples: GitRepo) -> None:
    examples.write("models/churn/train.py", "not committed\n")
    assert changes(examples)["uncommitted"] == ["churn"]
    assert changes(examples, head=examples.sha())["uncommitted"] == []
    assert changes(examples, head="main")["uncommitted"] == []


def test_modelci_state_is_not_uncommitted_work(git_repo: MakeRepo) -> None:
    # no .gitignore: the spec cache itself shows up as untracked
    repo = git_repo()
    repo.write("modelci.toml", '[project]\nshared = ["*"]\n')
    add_model(repo, "models/alpha")
    repo.commit()
    assert changes(repo)["uncommitted"] == []
    assert (repo.root / CACHE_FILE).is_file()
    assert changes(repo)["uncommitted"] == []


# --- a base per model --------------------------------------------------------------------------


def test_each_model_is_compared_from_its_own_last_deploy(
    plain: GitRepo, monkeypatch: pytest.MonkeyPatch
) -> None:
    add_model(plain, "models/gamma")
    first = plain.commit("gamma")
    plain.write("models/alpha/train.py", "print('accuracy=0.5')\n")
    second = plain.commit("alpha")
    plain.write("README.md", "docs only\n")
    head = plain.commit("docs")

    # nothing deployed: every model is built, whatever head touched
    report = changes(plain, deployed=lambda _head: {})
    assert {m: e["reasons"] for m, e in by_model(report).items()} == {
        "alpha": ["undeployed"],
        "beta": ["undeployed"],
        "gamma": ["undeployed"],
    }
    # alpha and beta deployed at `first` (alpha changed since), gamma at head itself (compared
    # with head's parent); one diff per distinct base, not one per model
    diffs: list[str | None] = []
    real_diff = git.diff
    monkeypatch.setattr(git, "diff", lambda root, b, h: diffs.append(b) or real_diff(root, b, h))
    asked: list[str] = []
    real_is_ancestor = git.is_ancestor
    monkeypatch.setattr(
        git, "is_ancestor", lambda root, a, d: asked.append(a) or real_is_ancestor(root, a, d)
    )
    deployed = {"alpha": first, "beta": first, "gamma": head}
    report = changes(plain, deployed=lambda _head: deployed)
    assert sorted(diffs, key=str) == sorted([first, second], key=str)
    assert asked == [first]  # once per distinct commit, not per model
    assert report["base"] is None  # a base per model
    assert {m: e["reasons"] for m, e in by_model(report).items()} == {"alpha": ["files"]}
    # a deploy from a commit that is not an ancestor of head (history rewritten): built again
    plain.git("checkout", "-q", "-b", "side", first)
    side = plain.commit("elsewhere")
    plain.git("checkout", "-q", "main")
    deployed = {"alpha": second, "beta": side, "gamma": second}
    assert {
        m: e["reasons"] for m, e in by_model(changes(plain, deployed=lambda _: deployed)).items()
    } == {"beta": ["undeployed"]}
    # an explicit base is one base for every model, as before
    assert list(by_model(changes(plain, base=second, deployed=lambda _: {}))) == []


# --- broken specs ------------------------------------------------------------------------------


def test_broken_model_toml_at_head(examples: GitRepo, modelci: Run) -> None:
    examples.write("models/churn/model.toml", '[model\nname = "churn"\n')
    examples.commit("broken")
    # the bad spec is that model's error, not the whole report's: the others go on
    [entry] = [c for c in detect(examples.root, environ={}).changed if c.model == "churn"]
    assert entry.error and entry.error.startswith("models/churn/model.toml: ")
    result = modelci("-C", examples.root, "changed", "--json")
    assert result.code == 0
    [listed] = [c for c in result.json()["changed"] if c["model"] == "churn"]
    assert "models/churn/model.toml" in listed["error"]
    assert "invalid TOML" in listed["error"]
    human = modelci("-C", examples.root, "changed")
    assert human.code == 0 and "bad spec" in human.stdout and "invalid TOML" in human.stdout


def test_broken_model_toml_fixed_by_the_head_commit(examples: GitRepo) -> None:
    spec = examples.root / "models/churn/model.toml"
    good = spec.read_text()
    spec.write_text('[model\nname = "churn"\n')
    examples.commit("broken")
    spec.write_text(good)
    examples.commit("fixed")
    report = changes(examples)
    assert report["deleted"] == []
    assert report["changed"] == [
        {
            "model": "churn",
            "path": "models/churn",
            "reasons": ["spec"],
            "files": ["models/churn/model.toml"],
        },
    ]


def test_broken_specs_fixed_with_the_project_file(examples: GitRepo) -> None:
    spec = examples.root / "models/churn/model.toml"
    good = spec.read_text()
    spec.write_text('[model\nname = "churn"\n')
    examples.write("modelci.toml", "[project\n")
    examples.commit("broken")
    spec.write_text(good)
    examples.write("modelci.toml", '[project]\nmodels = ["models/*"]\n')
    examples.commit("fixed")
    report = changes(examples)
    assert report["deleted"] == []
    assert [(e["model"], e["reasons"]) for e in report["changed"]] == [("churn", ["spec"])]


def test_invalid_model_name_at_head(plain: GitRepo) -> None:
    plain.write("models/alpha/model.toml", '[model]\nname = "Alpha_1"\n')
    plain.commit()
    [entry] = detect(plain.root, environ={}).changed  # named after its folder
    assert entry.model == "alpha" and entry.error
    assert entry.error.startswith("models/alpha/model.toml: model.name: ")
    assert "Alpha_1" in entry.error


def test_depends_on_of_the_wrong_type(plain: GitRepo) -> None:
    plain.write("models/alpha/model.toml", '[model]\ndepends_on = "lib/**"\n')
    plain.commit()
    [entry] = detect(plain.root, environ={}).changed
    assert entry.error and entry.error.startswith("models/alpha/model.toml: model.depends_on: ")


# --- the spec cache ----------------------------------------------------------------------------


def test_spec_cache_does_not_change_the_answer(examples: GitRepo) -> None:
    examples.write("lib/features/schema.py", "COLUMNS = ['a']\n")
    examples.commit()
    cache = examples.root / CACHE_FILE
    assert not cache.exists()
    first = changes(examples)
    assert cache.is_file()
    assert len(json.loads(cache.read_text())) == 2  # one entry per model.toml blob
    assert changes(examples) == first
    assert sorted(by_model(first)) == ["churn", "price"]


@pytest.mark.parametrize("content", [b"\x00garbage{", b"", b"[1, 2]", b'{"x": 1}', b"null"])
def test_corrupt_spec_cache_is_ignored(examples: GitRepo, content: bytes) -> None:
    examples.write("data/churn/train.csv", "customer_id\n")
    examples.commit()
    expected = changes(examples)
    cache = examples.root / CACHE_FILE
    cache.write_bytes(content)
    assert changes(examples) == expected
    cache.write_bytes(content)
    examples.write("models/price/train.py", "pass\n")
    examples.commit()
    assert sorted(by_model(changes(examples))) == ["price"]


def test_spec_cache_entries_with_a_wrong_shape_are_ignored(examples: GitRepo) -> None:
    expected = changes(examples, base="HEAD~1")
    cache = examples.root / CACHE_FILE
    entries = json.loads(cache.read_text())
    cache.write_text(json.dumps(dict.fromkeys(entries, "oops")))
    assert changes(examples, base="HEAD~1") == expected


def test_spec_cache_entries_without_a_validated_dump_are_validated_again(
    examples: GitRepo,
) -> None:
    """An entry of the right schema whose spec is not a whole validated dump (written by
    another build of modelci, or by hand) is validated again, never read as one."""
    expected = changes(examples, base="HEAD~1")
    cache = examples.root / CACHE_FILE
    entries = json.loads(cache.read_text())
    cache.write_text(json.dumps({key: {"spec": {"name": "x"}} for key in entries}))
    assert changes(examples, base="HEAD~1") == expected


def test_spec_cache_follows_a_changed_spec(examples: GitRepo) -> None:
    changes(examples)  # fills the cache with the specs as they are
    spec = examples.root / "models/churn/model.toml"
    spec.write_text(spec.read_text().replace('"data/churn/*.csv"', '"docs/**"'))
    examples.commit("churn now depends on docs")
    changes(examples)
    examples.write("docs/a.md", "a\n")
    examples.write("data/churn/train.csv", "customer_id\n")
    examples.commit()
    assert changes(examples)["changed"] == [
        {
            "model": "churn",
            "path": "models/churn",
            "reasons": ["depends_on"],
            "files": ["docs/a.md"],
        },
    ]


def test_unwritable_cache_only_costs_speed(examples: GitRepo) -> None:
    (examples.root / ".modelci").write_text("a file where the folder should be\n")
    examples.write("models/churn/train.py", "pass\n")
    examples.commit()
    assert sorted(by_model(changes(examples))) == ["churn"]


# --- `modelci changed` -------------------------------------------------------------------------


def test_cli_json(examples: GitRepo, modelci: Run) -> None:
    examples.git("mv", "models/price", "models/house-price")
    examples.write("models/churn/train.py", "pass\n")
    head = examples.commit()
    examples.write("lib/features/schema.py", "uncommitted\n")
    result = modelci("-C", examples.root, "changed", "--json")
    assert result.code == 0, result.stdout + result.stderr
    assert result.json() == {
        "base": examples.sha("HEAD^"),
        "head": head,
        "changed": [
            {
                "model": "churn",
                "path": "models/churn",
                "reasons": ["files"],
                "files": ["models/churn/train.py"],
            },
            {
                "model": "price",
                "path": "models/house-price",
                "reasons": ["renamed", "spec", "files"],
                "files": [
                    "models/house-price/model.toml",
                    "models/house-price/requirements.txt",
                    "models/house-price/train.py",
                ],
                "renamed_from": "price",
            },
        ],
        "deleted": [],
        "uncommitted": ["churn", "price"],
    }


def test_cli_root_commit_and_head_option(git_repo: MakeRepo, modelci: Run) -> None:
    repo = git_repo(examples=True)
    root = repo.sha()
    repo.git("rm", "-r", "-q", "models/churn")
    repo.commit()
    result = modelci("-C", repo.root, "changed", "--head", root, "--json")
    assert result.code == 0, result.stdout
    data = result.json()
    assert data["base"] is None
    assert data["head"] == root
    assert [(e["model"], e["reasons"]) for e in data["changed"]] == [
        ("churn", ["added"]),
        ("price", ["added"]),
    ]
    result = modelci("-C", repo.root, "changed", "--json")
    assert result.json()["deleted"] == ["churn"]
    assert result.json()["changed"] == []


def test_cli_human_output(examples: GitRepo, modelci: Run) -> None:
    examples.git("rm", "-r", "-q", "models/price")
    examples.write("models/churn/train.py", "pass\n")
    examples.commit()
    result = modelci("-C", examples.root, "changed")
    assert result.code == 0, result.stderr
    text = result.stdout + result.stderr
    assert "churn" in text
    assert "files" in text
    assert "deleted: price" in text


@pytest.mark.parametrize("option", ["--base", "--head"])
def test_cli_bad_revision(examples: GitRepo, modelci: Run, option: str) -> None:
    result = modelci("-C", examples.root, "changed", option, "no-such-rev", "--json")
    assert result.code == 2
    assert "no-such-rev" in result.json()["error"]["message"]
    result = modelci("-C", examples.root, "changed", option, "no-such-rev")
    assert result.code == 2
    assert "no-such-rev" in result.stderr


def test_cli_outside_a_repository(tmp_path: Path, modelci: Run) -> None:
    result = modelci("-C", tmp_path, "changed", "--json")
    assert result.code == 2
    assert "git" in result.json()["error"]["message"]
