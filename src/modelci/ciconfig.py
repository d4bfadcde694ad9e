"""CI configurations that run modelci: a GitHub Actions workflow and a CircleCI config.

Each is a pure function of the main branch and the Python version that returns the file's text.
Both run `modelci run` on every push to the main branch and `modelci release TAG` on every tag,
and on a pull request (GitHub) or a push to another branch (CircleCI) train and test the models
it changes and make `modelci report` of them: GitHub posts it as one comment on the pull request,
edited in place on each push (found by `pullreport.MARKER`); CircleCI keeps it as an artifact.
Both check out the full history (change detection compares with the commit last deployed), cache
`.modelci/envs` and uv's cache keyed on every requirements file, and take the registry and store
URLs from the CI's secrets. Neither sets the variables modelci reads to record who acted and the
CI run's URL (GITHUB_ACTOR, GITHUB_SERVER_URL, GITHUB_REPOSITORY, GITHUB_RUN_ID; CIRCLE_USERNAME,
CIRCLE_BUILD_URL): the CI sets them on every run.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable

from modelci import __version__
from modelci.errors import ConfigError
from modelci.pullreport import MARKER

# Characters a branch can hold here: ones that need no escaping in a GitHub filter pattern,
# a CircleCI filter or a YAML scalar.
BRANCH = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]*$")
PYTHON = re.compile(r"^3\.[0-9]{1,2}$")
# The files whose content decides the models' environments: the caches are keyed on them.
REQUIREMENTS = ("**/requirements*.txt", "**/requirements.lock")


def github_workflow(*, main: str = "main", python: str = "3.11") -> str:
    """The GitHub Actions workflow, `.github/workflows/modelci.yml` by default."""
    _check(main, python)
    patterns = ", ".join(f"'{p}'" for p in REQUIREMENTS)
    cache_prefix = f"modelci-${{{{ runner.os }}}}-py{python}-"
    values = {
        "MAIN": json.dumps(main),
        "MAIN_NAME": main,
        "MAIN_REF": f"refs/heads/{main}",
        "PYTHON": json.dumps(python),
        "CACHE_KEY": f"{cache_prefix}${{{{ hashFiles({patterns}) }}}}",
        "CACHE_PREFIX": cache_prefix,
        "VERSION": __version__,
    }
    plain = {"PERMISSIONS": "", "REF": ""}
    merge = _fill(
        _GITHUB_JOB,
        values,
        JOB="merge",
        IF="github.ref == '@MAIN_REF@'",
        FULL_HISTORY="`modelci run` diffs from the commit last deployed",
        STEP=_GITHUB_MERGE_STEP,
        **plain,
    )
    release = _fill(
        _GITHUB_JOB,
        values,
        JOB="release",
        IF="github.ref_type == 'tag'",
        FULL_HISTORY="release checks that the tagged commit is on @MAIN_NAME@",
        STEP=_GITHUB_RELEASE_STEP,
        **plain,
    )
    report = _fill(
        _GITHUB_JOB,
        values,
        JOB="report",
        IF="github.event_name == 'pull_request'",
        FULL_HISTORY="the report compares with the base branch",
        STEP=_GITHUB_REPORT_STEPS,
        PERMISSIONS=_GITHUB_REPORT_PERMISSIONS,
        REF=_GITHUB_REPORT_REF,
        MARKER=MARKER,
        NAMES=_NAMES,
    )
    return _fill(_GITHUB, values, JOBS=merge + "\n" + release + "\n" + report)


def circleci_config(*, main: str = "main", python: str = "3.11") -> str:
    """The CircleCI configuration, `.circleci/config.yml` by default."""
    _check(main, python)
    cache_prefix = f"modelci-v1-{{{{ arch }}}}-py{python}-"
    values = {
        "MAIN": json.dumps(main),
        "MAIN_NAME": main,
        "PYTHON": python,
        "CACHE_KEY": f'{cache_prefix}{{{{ checksum "/tmp/modelci-requirements.sha256" }}}}',
        "CACHE_PREFIX": cache_prefix,
        "VERSION": __version__,
        "REQUIREMENTS": " and ".join(f"`{p}`" for p in REQUIREMENTS),
        "NAMES": _NAMES,
    }
    return _fill(_CIRCLECI, values)


# provider -> (default path from the repository's root, generator)
PROVIDERS: dict[str, tuple[str, Callable[..., str]]] = {
    "github": (".github/workflows/modelci.yml", github_workflow),
    "circleci": (".circleci/config.yml", circleci_config),
}


def render(provider: str, *, main: str = "main", python: str = "3.11") -> str:
    """The configuration text for `provider` (a key of PROVIDERS)."""
    if provider not in PROVIDERS:
        raise ConfigError(
            f"unknown CI provider {provider!r}; known providers: {', '.join(PROVIDERS)}"
        )
    return PROVIDERS[provider][1](main=main, python=python)


def default_path(provider: str) -> str:
    """Where `provider`'s configuration lives, relative to the repository's root."""
    return PROVIDERS[provider][0]


def _check(main: str, python: str) -> None:
    if not BRANCH.fullmatch(main) or ".." in main or main.endswith((".", "/", ".lock")):
        raise ConfigError(
            f"{main!r} is not a branch name this generator can write (letters, digits, "
            "'.', '_', '-' and '/')",
            key="--main",
        )
    if not PYTHON.fullmatch(python):
        raise ConfigError(f"{python!r} is not a Python version such as 3.11", key="--python")


def _fill(template: str, values: dict[str, str], **more: str) -> str:
    """`template` with every `@NAME@` replaced; an unknown name is a bug, so it raises."""
    merged = {**values, **more}

    def substitute(match: re.Match[str]) -> str:
        return merged[match.group(1)]

    # twice: a value may itself hold @NAME@ (a job's text, its condition)
    text = re.sub(r"@([A-Z_]+)@", substitute, template)
    return re.sub(r"@([A-Z_]+)@", substitute, text)


_GITHUB = """\
# modelci: continuous integration and delivery of this repository's models.
# Written by `modelci ci-config github`; edit it freely, modelci does not rewrite it.
#
#   - a push to @MAIN_NAME@ runs the job `merge`: `modelci run` builds, trains, tests and deploys
#     to staging every model changed since the last deploy;
#   - a pushed tag runs the job `release`: `modelci release TAG` promotes the versions built
#     from the tagged commit to production;
#   - a pull request into @MAIN_NAME@ runs the job `report`: it trains and tests the models the
#     pull request changes and posts `modelci report` (their metrics against production's,
#     gates, tests) as one comment, edited in place on each push. A pull request from a fork
#     gets no secrets: there the job fails at its first command.
#
# Repository secrets (Settings > Secrets and variables > Actions):
#   MODELCI_REGISTRY_URL  the shared registry, e.g. postgresql://user:password@host/modelci
#   MODELCI_STORE_URL     the shared artifact store, e.g. s3://bucket/prefix or oci://host/repo
# Both are needed: a runner is thrown away after each run, and with it the default SQLite
# registry and local store.
#
# Every registry event records who acted and this run's URL: modelci reads GITHUB_ACTOR,
# GITHUB_SERVER_URL, GITHUB_REPOSITORY and GITHUB_RUN_ID, which GitHub sets on every run.
name: modelci

on:
  push:
    branches: [@MAIN@]
    tags: ['*']
  pull_request:
    branches: [@MAIN@]

permissions:
  contents: read

# One run per branch or tag at a time; the next one waits. modelci itself is race-safe (every
# registry update is a compare-and-set), but two runs training the same models waste a runner and
# the one that loses the race fails. A waiting run that a newer push replaces is skipped safely:
# `modelci run` compares with the commit last deployed, not with the previous push.
concurrency:
  group: modelci-${{ github.ref }}
  cancel-in-progress: false

env:
  MODELCI_REGISTRY_URL: ${{ secrets.MODELCI_REGISTRY_URL }}
  MODELCI_STORE_URL: ${{ secrets.MODELCI_STORE_URL }}

jobs:
@JOBS@"""

_GITHUB_JOB = """\
  @JOB@:
    if: @IF@
    runs-on: ubuntu-latest@PERMISSIONS@
    steps:
      - uses: actions/checkout@v4
        with:@REF@
          fetch-depth: 0  # the full history: @FULL_HISTORY@
      - uses: actions/setup-python@v5
        with:
          python-version: @PYTHON@
      # To pin modelci (and add the extras your backends need), write for instance
      #   pip install "modelci[postgres]==@VERSION@"
      - name: Install uv and modelci
        run: |
          pip install uv
          pip install modelci
      # The models' environments and uv's cache, keyed on every requirements file.
      - uses: actions/cache@v4
        with:
          path: |
            .modelci/envs
            ~/.cache/uv
          key: @CACHE_KEY@
          restore-keys: |
            @CACHE_PREFIX@
@STEP@
      # Keep the cache small: drop the wheels that are faster to download again than to restore.
      - name: Prune uv's cache before it is saved
        run: uv cache prune --ci
"""

_GITHUB_MERGE_STEP = """\
      - name: Merge pipeline
        run: modelci run --json"""

# The tag goes through the environment, never into the script's text, so that no tag name can
# inject shell code.
_GITHUB_RELEASE_STEP = """\
      - name: Release pipeline
        run: modelci release "$TAG"
        env:
          TAG: ${{ github.ref_name }}"""

_GITHUB_REPORT_PERMISSIONS = """
    permissions:
      contents: read
      pull-requests: write  # the report's comment"""

_GITHUB_REPORT_REF = """
          ref: ${{ github.event.pull_request.head.sha }}  # the branch's commit, not a merge"""

# The changed models' names from `modelci changed --json`, as a YAML scalar for an environment
# variable that both configurations pass to `python -c`.
_NAMES = json.dumps(
    'import json, sys; print(*(m["model"] for m in json.load(sys.stdin)["changed"]))'
)

# The branch names go through the environment, never into the script's text.
_GITHUB_REPORT_STEPS = """\
      - name: Train and test the changed models
        run: |
          changed=$(modelci changed --base "origin/$BASE" --json)
          names=$(python -c "$NAMES" <<< "$changed")
          read -r -a models <<< "$names"
          if [ "${#models[@]}" -gt 0 ]; then
            modelci train "${models[@]}"
            modelci test "${models[@]}"
          fi
        env:
          BASE: ${{ github.base_ref }}
          NAMES: @NAMES@
      # The report is posted whatever the tests found: it says which gates failed.
      - name: Post the report on the pull request
        if: always()
        run: |
          modelci report --base "origin/$BASE" --format markdown > modelci-report.md
          comment=$(gh api "repos/$GITHUB_REPOSITORY/issues/$PR/comments" --paginate \\
            --jq '.[] | select(.body | startswith("@MARKER@")) | .id' | tail -n 1)
          if [ -n "$comment" ]; then
            gh api --method PATCH "repos/$GITHUB_REPOSITORY/issues/comments/$comment" \\
              -F body=@modelci-report.md > /dev/null
          else
            gh pr comment "$PR" --repo "$GITHUB_REPOSITORY" --body-file modelci-report.md
          fi
        env:
          BASE: ${{ github.base_ref }}
          PR: ${{ github.event.pull_request.number }}
          GH_TOKEN: ${{ github.token }}"""

_CIRCLECI = """\
# modelci: continuous integration and delivery of this repository's models.
# Written by `modelci ci-config circleci`; edit it freely, modelci does not rewrite it.
#
#   - a push to @MAIN_NAME@ runs the workflow `merge`: `modelci run` builds, trains, tests and
#     deploys to staging every model changed since the last deploy;
#   - a pushed tag runs the workflow `release`: `modelci release TAG` promotes the versions
#     built from the tagged commit to production;
#   - a push to any other branch runs the workflow `pull-request`: it trains and tests the
#     models the branch changes against @MAIN_NAME@ and keeps `modelci report` (their metrics
#     against production's, gates, tests) as the artifacts modelci-report/report.{md,html,json}.
#
# Create a context named `modelci` (Organization Settings > Contexts) holding:
#   MODELCI_REGISTRY_URL  the shared registry, e.g. postgresql://user:password@host/modelci
#   MODELCI_STORE_URL     the shared artifact store, e.g. s3://bucket/prefix or oci://host/repo
# Both are needed: a job's machine is thrown away after each run, and with it the default
# SQLite registry and local store.
#
# Every registry event records who acted and this job's URL: modelci reads CIRCLE_USERNAME and
# CIRCLE_BUILD_URL, which CircleCI sets on every job.
version: 2.1

executors:
  python:
    docker:
      - image: cimg/python:@PYTHON@

commands:
  prepare:
    description: Check out the full history, install uv and modelci, restore the caches.
    steps:
      # the full history: `modelci run` diffs from the commit last deployed, and release
      # checks that the tagged commit is on @MAIN_NAME@
      - checkout:
          method: full
      # To pin modelci (and add the extras your backends need), write for instance
      #   pip install "modelci[postgres]==@VERSION@"
      - run:
          name: Install uv and modelci
          command: |
            pip install uv
            pip install modelci
      # The caches are keyed on every @REQUIREMENTS@.
      - run:
          name: Hash the requirements files
          command: |
            find . -name .git -prune -o -type f \\
              \\( -name 'requirements*.txt' -o -name requirements.lock \\) -print0 |
              sort -z | xargs -0 -r sha256sum > /tmp/modelci-requirements.sha256
      - restore_cache:
          name: Restore the models' environments and uv's cache
          keys:
            - @CACHE_KEY@
            - @CACHE_PREFIX@
  save-caches:
    description: Save the models' environments and uv's cache.
    steps:
      # Keep the cache small: drop the wheels that are faster to download again than to restore.
      - run:
          name: Prune uv's cache before it is saved
          command: uv cache prune --ci
      - save_cache:
          name: Save the models' environments and uv's cache
          key: @CACHE_KEY@
          paths:
            - .modelci/envs
            - ~/.cache/uv

jobs:
  merge:
    executor: python
    steps:
      - prepare
      - run:
          name: Merge pipeline
          command: modelci run --json
      - save-caches
  release:
    executor: python
    steps:
      - prepare
      - run:
          name: Release pipeline
          command: modelci release "$CIRCLE_TAG"
      - save-caches
  report:
    executor: python
    steps:
      - prepare
      # A failure is remembered, not raised at once, so that the report is still made and kept.
      - run:
          name: Train and test the changed models
          environment:
            NAMES: @NAMES@
          command: |
            changed=$(modelci changed --base origin/@MAIN_NAME@ --json)
            names=$(python -c "$NAMES" \\<<< "$changed")
            read -r -a models \\<<< "$names"
            if [ "${#models[@]}" -gt 0 ]; then
              { modelci train "${models[@]}" && modelci test "${models[@]}"; } ||
                touch /tmp/modelci-failed
            fi
      - run:
          name: Report
          command: |
            mkdir -p modelci-report
            for format in md:markdown html:html json:json; do
              modelci report --base origin/@MAIN_NAME@ --format "${format#*:}" \\
                > "modelci-report/report.${format%%:*}"
            done
      - store_artifacts:
          path: modelci-report
          destination: modelci-report
      - run:
          name: Fail when a model failed its training or tests
          command: test ! -e /tmp/modelci-failed

# One job of each kind at a time (serial-group): modelci itself is race-safe (every registry
# update is a compare-and-set), but two runs training the same models waste a machine and the one
# that loses the race fails. A later run is safe to follow: `modelci run` compares with the
# commit last deployed, not with the previous push.
workflows:
  merge:
    jobs:
      - merge:
          context: modelci
          serial-group: << pipeline.project.slug >>/modelci-merge
          filters:
            branches:
              only: @MAIN@
            tags:
              ignore: /.*/
  release:
    jobs:
      - release:
          context: modelci
          serial-group: << pipeline.project.slug >>/modelci-release
          filters:
            branches:
              ignore: /.*/
            tags:
              only: /.*/
  pull-request:
    jobs:
      - report:
          context: modelci
          filters:
            branches:
              ignore: @MAIN@
"""
