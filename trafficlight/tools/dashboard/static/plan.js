// trafficlight dashboard: the rollout plan panel (step, baked / left, evidence, blockers) and
// its token-guarded controls. Uses el(), post() and $() from dashboard.js; text via textContent.
"use strict";

function span(seconds) {
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
  const pad = (n) => String(n).padStart(2, "0");
  return h ? `${h}h${pad(m)}m${pad(r)}s` : `${m}m${pad(r)}s`;
}

// The controls' domain choice: "all domains" (the two-argument SQL forms) or one of them.
function renderDomainChoice(domains) {
  const select = $("#domain-select");
  const have = [...select.options].map((o) => o.value).filter(Boolean).join(",");
  if (have === domains.map((d) => d.domain).join(",")) return;
  const chosen = select.value;
  const option = (value, text) => { const o = el("option", text); o.value = value; return o; };
  select.replaceChildren(option("", "all domains"), ...domains.map((d) => option(d.domain, d.domain)));
  select.value = domains.some((d) => d.domain === chosen) ? chosen : "";
}

function renderPlan(snap) {
  const status = snap.plan;
  const panel = $("#plan");
  const domains = snap.domains || [];
  renderDomainChoice(domains);
  panel.dataset.state = status ? status.plan.state : "none";
  panel.dataset.step = status ? String(status.plan.current_step) : "";
  if (!status) {
    $("#plan-state").textContent = "no plan: set one below";
    $("#plan-steps").replaceChildren();
    for (const id of ["#plan-baked", "#plan-bake", "#plan-left"]) $(id).textContent = "–";
  } else {
    const plan = status.plan;
    $("#plan-state").textContent =
      `${plan.state}: step ${plan.current_step} of ${plan.steps.length} at ${plan.step_pct}%` +
      (plan.next_pct === null ? " (last step)" : `, next ${plan.next_pct}%`) +
      ` · v${plan.version} by ${plan.created_by}: ${plan.notes || ""}`;
    $("#plan-steps").replaceChildren(...plan.steps.map((pct, i) => el(
      "li", `${pct}%`,
      i + 1 < plan.current_step ? "done" : i + 1 === plan.current_step ? "current" : "")));
    $("#plan-baked").textContent = span(status.baked_s);
    $("#plan-bake").textContent = span(plan.bake_s);
    $("#plan-left").textContent = span(status.left_s);
  }
  $("#plan-evidence tbody").replaceChildren(...domains.map((d) => {
    const tr = el("tr");
    tr.dataset.domain = d.domain;
    const count = status && d.domain in status.evidence
      ? `${status.evidence[d.domain]} / ${status.required_proceed}` : "–";
    tr.append(el("td", d.domain),
              el("td", `${d.percentage}% ${d.enabled ? "on" : "off"}${d.overridden ? " (own)" : ""}`,
                 d.enabled ? "" : "off"),
              el("td", count, "num evidence"));
    return tr;
  }));
  const blockers = status ? status.blockers : [];
  $("#plan-blockers").replaceChildren(...(status && status.ready
    ? [el("li", "ready to promote", "ready")]
    : blockers.map((b) => { const li = el("li", b.message, "blocker"); li.dataset.kind = b.kind; return li; })));
}

function wirePlanControls() {
  const reason = () => $("#reason").value.trim();
  $("#plan-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const body = { steps: $("#plan-steps-input").value.trim(), bake: $("#plan-bake-input").value.trim() };
    if (reason()) body.reason = reason();
    post("/api/plan/set", body);
  });
  for (const action of ["promote", "pause", "resume", "abort"]) {
    document.querySelector(`button[data-action="plan-${action}"]`).addEventListener("click", () => {
      post(`/api/plan/${action}`, reason() ? { reason: reason() } : {});
    });
  }
}

wirePlanControls();
