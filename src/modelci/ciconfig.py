"""CI configurations that run modelci: a GitHub Actions workflow and a CircleCI config.

Each is a pure function of the main branch, the Python version, modelci's extras and whether AWS
is used, that returns the file's text. Both install exactly the modelci version that wrote them,
run `modelci run` on every push to the main branch and `modelci release TAG` on every tag, check
out the full history (change detection compares with the commit last deployed), cache
`.modelci/envs` and uv's cache keyed on every requirements file, take the registry and store URLs
and the deploy backend from the CI's secrets and, where AWS is used, get credentials through the
CI's OIDC token (no stored keys). Neither sets the variables modelci reads to record who acted
and the CI run's URL (GITHUB_ACTOR, GITHUB_SERVER_URL, GITHUB_REPOSITORY, GITHUB_RUN_ID;
CIRCLE_USERNAME, CIRCLE_BUILD_URL): the CI sets them on every run.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable

from modelci import __version__
from modelci.errors import ConfigError

# Characters a branch can hold here: ones that need no escaping in a GitHub filter pattern,
# a CircleCI filter or a YAML scalar.
BRANCH = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]*$")
PYTHON = re.compile(r"^3\.[0-9]{1,2}$")
# The files whose content decides the models' environments: the caches are keyed on them.
REQUIREMENTS = ("**/requirements*.txt", "**/requirements.lock")
# modelci's optional dependencies (pyproject.toml), in the order an install line names them
EXTRAS = ("postgres", "s3", "sagemaker", "ray", "parquet")


def github_workflow(
    *, main: str = "main", python: str = "3.11", extras: tuple[str, ...] = (), aws: bool = False
) -> str:
    """The GitHub Actions workflow, `.github/workflows/modelci.yml` by default."""
    _check(main, python, extras)
    patterns = ", ".join(f"'{p}'" for p in REQUIREMENTS)
    cache_prefix = f"modelci-${{{{ runner.os }}}}-py{python}-"
    values = {
        "MAIN": json.dumps(main),
        "MAIN_NAME": main,
        "MAIN_REF": f"refs/heads/{main}",
        "PYTHON": json.dumps(python),
        "CACHE_KEY": f"{cache_prefix}${{{{ hashFiles({patterns}) }}}}",
        "CACHE_PREFIX": cache_prefix,
        "INSTALL": install_command(extras),
        "PERMISSIONS": "contents: read\n  id-token: write  # the OIDC token AWS trades for a role"
        if aws
        else "contents: read",
        "AWS_STEP": _GITHUB_AWS_STEP if aws else "",
        "AWS_SECRETS": _GITHUB_AWS_SECRETS if aws else "",
    }
    merge = _fill(
        _GITHUB_JOB,
        values,
        JOB="merge",
        IF="github.ref == '@MAIN_REF@'",
        FULL_HISTORY="`modelci run` diffs from the commit last deployed",
        STEP=_GITHUB_MERGE_STEP,
    )
    release = _fill(
        _GITHUB_JOB,
        values,
        JOB="release",
        IF="github.ref_type == 'tag'",
        FULL_HISTORY="release checks that the tagged commit is on @MAIN_NAME@",
        STEP=_GITHUB_RELEASE_STEP,
    )
    return _fill(_GITHUB, values, JOBS=merge + "\n" + release)


def circleci_config(
    *, main: str = "main", python: str = "3.11", extras: tuple[str, ...] = (), aws: bool = False
) -> str:
    """The CircleCI configuration, `.circleci/config.yml` by default."""
    _check(main, python, extras)
    cache_prefix = f"modelci-v1-{{{{ arch }}}}-py{python}-"
    values = {
        "MAIN": json.dumps(main),
        "MAIN_NAME": main,
        "PYTHON": python,
        "CACHE_KEY": f'{cache_prefix}{{{{ checksum "/tmp/modelci-requirements.sha256" }}}}',
        "CACHE_PREFIX": cache_prefix,
        "REQUIREMENTS": " and ".join(f"`{p}`" for p in REQUIREMENTS),
        "INSTALL": install_command(extras),
        "ORBS": _CIRCLECI_ORBS if aws else "",
        "AWS_STEP": _CIRCLECI_AWS_STEP if aws else "",
        "AWS_SECRETS": _CIRCLECI_AWS_SECRETS if aws else "",
    }
    return _fill(_CIRCLECI, values)


def install_command(extras: tuple[str, ...]) -> str:
    """`pip install` of exactly this modelci, with `extras`: the CI runs what generated it."""
    wanted = f"[{','.join(extras)}]" if extras else ""
    return f'pip install "modelci{wanted}=={__version__}"'


def extras_for(*, registry_url: str, store_url: str, backends: tuple[str, ...]) -> tuple[str, ...]:
    """The extras a project's settings need: its registry's and store's schemes, its train and
    deploy backends."""
    needed = set()
    if registry_url.startswith(("postgresql:", "postgres:", "postgresql+")):
        needed.add("postgres")
    if store_url.startswith("s3:"):
        needed.add("s3")
    needed |= {b for b in backends if b in ("sagemaker", "ray")}
    return tuple(e for e in EXTRAS if e in needed)


# provider -> (default path from the repository's root, generator)
PROVIDERS: dict[str, tuple[str, Callable[..., str]]] = {
    "github": (".github/workflows/modelci.yml", github_workflow),
    "circleci": (".circleci/config.yml", circleci_config),
}


def render(
    provider: str,
    *,
    main: str = "main",
    python: str = "3.11",
    extras: tuple[str, ...] = (),
    aws: bool = False,
) -> str:
    """The configuration text for `provider` (a key of PROVIDERS)."""
    if provider not in PROVIDERS:
        raise ConfigError(
            f"unknown CI provider {provider!r}; known providers: {', '.join(PROVIDERS)}"
        )
    return PROVIDERS[provider][1](main=main, python=python, extras=extras, aws=aws)


def default_path(provider: str) -> str:
    """Where `provider`'s configuration lives, relative to the repository's root."""
    return PROVIDERS[provider][0]


def _check(main: str, python: str, extras: tuple[str, ...]) -> None:
    unknown = [e for e in extras if e not in EXTRAS]
    if unknown:
        raise ConfigError(
            f"unknown extra {unknown[0]!r}; modelci's extras: {', '.join(EXTRAS)}", key="--extras"
        )
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
#     from the tagged commit to production.
#
# Repository secrets (Settings > Secrets and variables > Actions):
#   MODELCI_REGISTRY_URL    the shared registry, e.g. postgresql://user:password@host/modelci
#   MODELCI_STORE_URL       the shared artifact store, e.g. s3://bucket/prefix or oci://host/repo
#   MODELCI_DEPLOY_BACKEND  where endpoints run: host (a host following the registry), ray or
#                           sagemaker; never local, whose endpoints die with the runner
@AWS_SECRETS@# All are needed: a runner is thrown away after each run, and with it the default
# SQLite registry, local store and any endpoint it started.
#
# Every registry event records who acted and this run's URL: modelci reads GITHUB_ACTOR,
# GITHUB_SERVER_URL, GITHUB_REPOSITORY and GITHUB_RUN_ID, which GitHub sets on every run.
name: modelci

on:
  push:
    branches: [@MAIN@]
    tags: ['*']

permissions:
  @PERMISSIONS@

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
  MODELCI_DEPLOY_BACKEND: ${{ secrets.MODELCI_DEPLOY_BACKEND }}

jobs:
@JOBS@"""

_GITHUB_JOB = """\
  @JOB@:
    if: @IF@
    runs-on: ubuntu-latest
    steps:
      - uses: actions/checkout@v4
        with:
          fetch-depth: 0  # the full history: @FULL_HISTORY@
      - uses: actions/setup-python@v5
        with:
          python-version: @PYTHON@
      # Exactly the modelci that wrote this file, with the extras the project's settings need.
      - name: Install uv and modelci
        run: |
          pip install uv
          @INSTALL@
@AWS_STEP@      # The models' environments and uv's cache, keyed on every requirements file.
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

_GITHUB_AWS_SECRETS = """\
#   AWS_ROLE_ARN            the IAM role the job assumes through GitHub's OIDC provider (no
#                           access keys stored); its trust policy names this repository
#   AWS_REGION              the region of the bucket and SageMaker, e.g. eu-west-1
"""

_GITHUB_AWS_STEP = """\
      - uses: aws-actions/configure-aws-credentials@v4
        with:
          role-to-assume: ${{ secrets.AWS_ROLE_ARN }}
          aws-region: ${{ secrets.AWS_REGION }}
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

_CIRCLECI_AWS_SECRETS = """\
#   AWS_ROLE_ARN            the IAM role assumed with this job's OIDC token (no access keys
#                           stored); its trust policy names your CircleCI organization
#   AWS_REGION              the region of the bucket and SageMaker, e.g. eu-west-1
"""

_CIRCLECI_ORBS = """
orbs:
  aws-cli: circleci/aws-cli@5.1
"""

_CIRCLECI_AWS_STEP = """\
      - aws-cli/setup:
          role_arn: ${AWS_ROLE_ARN}
          region: ${AWS_REGION}
"""

_CIRCLECI = """\
# modelci: continuous integration and delivery of this repository's models.
# Written by `modelci ci-config circleci`; edit it freely, modelci does not rewrite it.
#
#   - a push to @MAIN_NAME@ runs the workflow `merge`: `modelci run` builds, trains, tests and
#     deploys to staging every model changed since the last deploy;
#   - a pushed tag runs the workflow `release`: `modelci release TAG` promotes the versions
#     built from the tagged commit to production.
#
# Create a context named `modelci` (Organization Settings > Contexts) holding:
#   MODELCI_REGISTRY_URL    the shared registry, e.g. postgresql://user:password@host/modelci
#   MODELCI_STORE_URL       the shared artifact store, e.g. s3://bucket/prefix or oci://host/repo
#   MODELCI_DEPLOY_BACKEND  where endpoints run: host (a host following the registry), ray or
#                           sagemaker; never local, whose endpoints die with the job's machine
@AWS_SECRETS@# All are needed: a job's machine is thrown away after each run, and with it the
# default SQLite registry, local store and any endpoint it started.
#
# Every registry event records who acted and this job's URL: modelci reads CIRCLE_USERNAME and
# CIRCLE_BUILD_URL, which CircleCI sets on every job.
version: 2.1
@ORBS@
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
      # Exactly the modelci that wrote this file, with the extras the project's settings need.
      - run:
          name: Install uv and modelci
          command: |
            pip install uv
            @INSTALL@
@AWS_STEP@      # The caches are keyed on every @REQUIREMENTS@.
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
"""
