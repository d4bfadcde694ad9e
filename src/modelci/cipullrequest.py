"""The pull-request part of the CI configurations (ciconfig.py fills it in): train and test the
models a branch changes against the main branch, then make `modelci report` of them. GitHub
posts it as one comment on the pull request, found again by `pullreport.MARKER` and edited in
place on each push (with `gh`); CircleCI keeps it as artifacts (Markdown, HTML and JSON), and
fails the job after keeping them when a model failed. Templates use ciconfig's `@NAME@` fields.
"""

from __future__ import annotations

import json

GITHUB_PERMISSIONS = """
    permissions:
      contents: read
      pull-requests: write  # the report's comment"""

GITHUB_REF = """
          ref: ${{ github.event.pull_request.head.sha }}  # the branch's commit, not a merge"""

# The changed models' names from `modelci changed --json`, as a YAML scalar for an environment
# variable that both configurations pass to `python -c`.
NAMES = json.dumps(
    'import json, sys; print(*(m["model"] for m in json.load(sys.stdin)["changed"]))'
)

# The branch names go through the environment, never into the script's text.
GITHUB_STEPS = """\
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

# The job and its workflow, in CircleCI's syntax; `\\<<` keeps CircleCI from reading `<<` as a
# pipeline parameter.
CIRCLECI_JOB = """\
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
"""

CIRCLECI_WORKFLOW = """\
  pull-request:
    jobs:
      - report:
          context: modelci
          filters:
            branches:
              ignore: @MAIN@
"""
