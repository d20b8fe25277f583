#!/usr/bin/env bash
# Baseline for `tfrollback to`: the same rollback done directly with terraform, with the same
# variable values: plan to a file, apply that plan, then a verify plan that must show no
# changes (-detailed-exitcode 0).
#
# Usage: to_baseline.sh STACK_DIR VAR_FILE
set -euo pipefail

cd "$1"
var_file=$2

terraform plan -input=false -compact-warnings -var-file="$var_file" -out=baseline.tfplan >/dev/null
terraform apply -input=false -compact-warnings baseline.tfplan >/dev/null
terraform plan -input=false -compact-warnings -detailed-exitcode -var-file="$var_file" >/dev/null
