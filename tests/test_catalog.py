"""The seed catalog: each item's verdict, the localised wrong steps, and docs/seed_catalog.md.

One run of ``scripts/seed_catalog.py --check --json`` (``jaxreg check`` on every
file of ``derivations/``, in subprocesses) feeds every test here.
"""

import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "seed_catalog.py"
DOC = ROOT / "docs" / "seed_catalog.md"

REQUIRED = (["S0.%d" % i for i in range(1, 8)] + ["S1.%d" % i for i in range(1, 5)]
            + ["S2.%d" % i for i in range(1, 4)] + ["S3.%d" % i for i in range(1, 5)]
            + ["S4.1", "S4.2"])

# case -> (verdict, first wrong step). "ok": nothing wrong, no kink; "kink": nothing
# wrong, at least one kink row; "wrong": found wrong, first at the given step.
EXPECTED = {
    "s0_1_dL_dy": ("ok", None),
    "s0_1_output_layer": ("ok", None),
    "s0_1_relu_H0_is_1": ("kink", None),
    "s0_1_input_layer": ("ok", None),
    "s0_2_chain_rule": ("ok", None),
    "s0_2_chain_rule_at_kink": ("kink", None),
    "s0_3_keras_slots": ("ok", None),
    "s0_4_l1_activity": ("kink", None),
    "s0_4_l1_activity_alone": ("ok", None),
    "s0_5_leaky_derivative": ("ok", None),
    "s0_5_leaky_minus_relu": ("kink", None),
    "s0_6_claimed_change": ("wrong", "y"),
    "s0_6_exact_without_negative_preactivations": ("ok", None),
    "s0_6_y_unchanged_but_C_wrong": ("wrong", "params['C']"),
    "s0_7_identity": ("kink", None),
    "s0_8_one_plus_alpha_to_the_n": ("wrong", "params[0]['b']"),
    "s1_1_sigmoid": ("ok", None),
    "s1_2_tanh": ("ok", None),
    "s1_2_tanh_quotient_form": ("ok", None),
    "s1_2_mislabelled_line": ("wrong", "value"),
    "s1_3_relu": ("kink", None),
    "s1_3_relu_vs_jax_nn_relu": ("ok", None),
    "s1_4_leaky_relu": ("ok", None),
    "s1_4_leaky_relu_vs_jax_nn": ("kink", None),
    "s1_4_jaxreg_closed_form": ("ok", None),
    "s2_1_l2_gradient": ("ok", None),
    "s2_1_l2_gradient_library": ("ok", None),
    "s2_2_update_mini_batch": ("ok", None),
    "s2_2_biases_not_decayed": ("wrong", "params[0]['b']"),
    "s2_3_l1_gradient": ("kink", None),
    "s2_3_l1_update": ("ok", None),
    "s2_3_l1_update_vs_autodiff": ("kink", None),
    "s3_1_single_neuron": ("ok", None),
    "s3_2_asker_1_layer": ("wrong", "yhat"),
    "s3_2_asker_2_layers": ("wrong", "yhat"),
    "s3_2_asker_3_layers": ("wrong", "yhat"),
    "s3_2_asker_all_three_weights": ("wrong", "params['w1']"),
    "s3_2_sign_fixed_x_positive": ("ok", None),
    "s3_2_sign_fixed_1_layer_mixed_x": ("wrong", "z1"),
    "s3_2_sign_fixed_2_layers_mixed_x": ("wrong", "z2"),
    "s3_2_sign_fixed_3_layers_mixed_x": ("wrong", "z3"),
    "s3_2_answer_3_layers_mixed_x": ("kink", None),
    "s3_3_layer_equations": ("ok", None),
    "s3_3_any_activation_in_1_only": ("ok", None),
    "s3_4_relu_prime_0_is_0": ("ok", None),
    "s3_4_relu_prime_0_is_half": ("kink", None),
    "s3_4_relu_prime_0_is_1": ("kink", None),
    "s3_4_relu_prime_0_is_0_dead_layer": ("ok", None),
    "s3_4_relu_prime_0_is_1_dead_layer": ("kink", None),
    "s3_5_sigmoid_factor": ("ok", None),
    "s4_1_l1_biases_included": ("ok", None),
    "s4_1_l1_at_zero": ("kink", None),
    "s4_1_nielsen_convention_differs": ("wrong", "params[0]['b']"),
    "s4_2_l2_elementwise": ("ok", None),
    "s4_2_l1_and_l2_combined": ("ok", None),
    "s4_2_library_slots": ("kink", None),
}
BAD = ("wrong", "missing", "shape")


def _load_script():
  spec = importlib.util.spec_from_file_location("seed_catalog", SCRIPT)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


@pytest.fixture(scope="module")
def run(tmp_path_factory):
  out = tmp_path_factory.mktemp("catalog") / "checks.json"
  proc = subprocess.run([sys.executable, str(SCRIPT), "--check", "--json", str(out)], cwd=ROOT,
                        capture_output=True, text=True, timeout=900, check=False)
  assert out.exists(), f"seed_catalog.py wrote no JSON:\n{proc.stdout}\n{proc.stderr}"
  doc = json.loads(out.read_text(encoding="utf-8"))
  return proc, doc, {c["name"]: c for c in doc["cases"]}


def _verdict(report):
  if not report["ok"]:
    return "wrong"
  return "kink" if any(r["verdict"] == "kink" for r in report["rows"]) else "ok"


def test_every_derivation_file_checks_clean_and_the_page_is_current(run):
  proc, doc, _ = run
  assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
  # one summary line per file of derivations/, each with every case met
  summaries = re.findall(r"^jaxreg check: (\d+) cases, (\d+) met .*?, (\d+) not met", proc.stdout,
                         re.M)
  assert len(summaries) == 5, proc.stdout[-2000:]
  assert all(n == met and bad == "0" for n, met, bad in summaries), summaries
  assert doc["summary"]["not_met"] == [] and doc["summary"]["met"] == len(doc["cases"])
  assert "docs/seed_catalog.md is up to date" in proc.stdout


def test_every_case_has_its_documented_verdict_and_step(run):
  _, _, cases = run
  assert set(cases) == set(EXPECTED)
  for name, (verdict, first) in EXPECTED.items():
    c = cases[name]
    assert c["met"], (name, c["reason"])
    assert _verdict(c["report"]) == verdict, (name, c["report"]["summary"])
    assert c["report"]["first_wrong"] == first, (name, c["report"]["summary"])
    if verdict != "wrong":
      assert not any(r["verdict"] in BAD for r in c["report"]["rows"]), name


def test_every_seed_item_is_encoded(run):
  _, doc, _ = run
  items = {c["item"] for c in doc["cases"]}
  assert set(REQUIRED) <= items
  page = DOC.read_text(encoding="utf-8")
  for item in REQUIRED:
    assert re.search(rf"^\| [^|]+ \| {re.escape(item)} \|", page, re.M), item


def test_s3_2_asker_is_wrong_at_the_sign_then_at_the_missing_step(run):
  _, _, cases = run
  for layers in (1, 2, 3):
    rep = cases[f"s3_2_asker_{layers}_layer" + ("s" if layers > 1 else "")]["report"]
    row = next(r for r in rep["rows"] if r["name"] == "yhat")
    assert "sign error" in row["diagnosis"]
    assert "very first step" in rep["summary"]
  for layers, word in ((1, "1_layer"), (2, "2_layers"), (3, "3_layers")):
    rep = cases[f"s3_2_sign_fixed_{word}_mixed_x"]["report"]
    z = next(r for r in rep["rows"] if r["name"] == f"z{layers}")
    assert f"z{layers} < 0" in z["diagnosis"] and "activation-derivative" in z["diagnosis"]
    # every step before it (closer to the output) agrees: ok or a valid kink
    before = rep["rows"][:rep["rows"].index(z)]
    assert before and all(r["verdict"] in ("ok", "kink") for r in before)


def test_s0_6_error_is_measured_and_small_on_the_gradient_but_not_on_the_change(run):
  _, _, cases = run
  notes = " ".join(cases["s0_6_claimed_change"]["report"]["notes"])
  total = float(re.search(r"whole claimed LeakyReLU gradient ([0-9.e+-]+)", notes).group(1))
  delta_a = float(re.search(r"ΔA ([0-9.e+-]+)", notes).group(1))
  delta_c = float(re.search(r"ΔC ([0-9.e+-]+)", notes).group(1))
  assert 1e-4 < total < 0.1           # approximate: α = 0.01 keeps the whole gradient close
  assert 0.1 < delta_a                # but the claimed change itself is far off
  assert delta_c == 1.0               # claimed Δ∂L/∂C = 0 against a non-zero true change
  page = DOC.read_text(encoding="utf-8")
  assert f"LeakyReLU gradient {total:.2e}" in page


def test_s0_8_ratio_is_not_one_plus_alpha_to_the_n(run):
  _, _, cases = run
  notes = " ".join(cases["s0_8_one_plus_alpha_to_the_n"]["report"]["notes"])
  measured = float(re.search(r"leaky / relu = ([0-9.]+)", notes).group(1))
  claimed = float(re.search(r"claimed \(1\+α\)\^\d+ = ([0-9.]+)", notes).group(1))
  assert abs(measured - claimed) > 0.05


def test_page_renders_from_the_json_alone(run):
  _, doc, _ = run
  page = _load_script().render(doc)
  assert page == DOC.read_text(encoding="utf-8")
  assert "**approximate**" in page and "first wrong step `∂L/∂yhat`" in page
  assert page.count("jaxreg check derivations/") >= len(REQUIRED)
