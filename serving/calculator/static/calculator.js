/* lbp-benefit calculator: plain JS, no libraries, no storage. Reads the field specification from
   #calc-config, validates in place, posts to this server only, and draws the result as SVG. */
(function () {
  "use strict";
  var SVGNS = "http://www.w3.org/2000/svg";
  var cfg, form, specs = {}, order = [];

  // ---------------------------------------------------------------- small helpers
  function el(tag, attrs, kids) {
    var e = document.createElement(tag);
    setAll(e, attrs); add(e, kids); return e;
  }
  function sv(tag, attrs, kids) {
    var e = document.createElementNS(SVGNS, tag);
    setAll(e, attrs); add(e, kids); return e;
  }
  function setAll(e, attrs) {
    Object.keys(attrs || {}).forEach(function (k) {
      if (k === "text") e.textContent = attrs[k]; else if (attrs[k] !== null && attrs[k] !== undefined) e.setAttribute(k, attrs[k]);
    });
  }
  function add(e, kids) {
    (kids || []).forEach(function (k) { if (k) e.appendChild(typeof k === "string" ? document.createTextNode(k) : k); });
  }
  function num(x) { return typeof x === "number" && isFinite(x); }
  function fmt(x, d) {
    if (!num(x)) return "n/a";
    var s = Math.abs(x).toFixed(d === undefined ? 1 : d);
    return (x < 0 && Number(s) !== 0 ? "\u2212" : "") + s;
  }
  function signed(x, d) { return (num(x) && x > 0 ? "+" : "") + fmt(x, d); }
  function pct(p) { return num(p) ? Math.round(p * 100) : null; }
  // a model-based probability as shown (predict/verdict.py percent(): whole percent, never 0% or 100%)
  // a verdict probability as the server words it (predict.verdict.percent: never "0%" or "100%")
  function pctText(v, key) { var t = v.percent && v.percent[key]; return t ? t : "n/a"; }
  // "Model-based probability" (predict/verdict.py MODEL_BASED, through the page's config)
  function modelBased() { return upper((cfg && cfg.model_based) || "model-based probability"); }
  function pair(iv) { return iv && num(iv[0]) && num(iv[1]) ? iv : null; }
  function span(text, cls) { return el("span", { "class": cls, text: text }); }
  function lower(s) { return s.charAt(0).toLowerCase() + s.slice(1); }
  function upper(s) { return s.charAt(0).toUpperCase() + s.slice(1); }
  // the configured intervention label (the model's manifest; the default study: "exercise therapy")
  function act() { return (cfg && cfg.intervention_label) || "the intervention"; }
  // what the good result of a binary outcome is, as a verb phrase ("recover"; else "have no preterm")
  function good(t) {
    if (t.outcome === "global_recovery") return "recover";
    var s = t.scale || "";
    return s.indexOf("probability of ") === 0 ? "have " + s.slice("probability of ".length) : "have the good result";
  }

  // ---------------------------------------------------------------- the form
  function rangeText(s) {
    return s.range ? "from " + s.range[0] + " to " + s.range[1] + (s.unit && s.type !== "baseline" ? " " + s.unit : "") : "";
  }
  function badRange(s) {
    return s.label + " must be a number " + rangeText(s) + "." + (s.type === "baseline" ? "" : " Leave it empty if unknown.");
  }
  function parseNumber(raw) {
    var t = raw.trim();
    if (t === "") return { empty: true };
    if (t.indexOf(",") >= 0 && t.indexOf(".") < 0) t = t.replace(",", ".");
    if (!/^[+-]?(\d+(\.\d*)?|\.\d+)$/.test(t)) return { bad: true };
    return { value: Number(t) };
  }
  function readForm() {
    var patient = {}, errors = [];
    order.forEach(function (name) {
      var s = specs[name];
      if (s.type === "binary") {
        var r = form.querySelector('input[name="' + name + '"]:checked');
        if (r && r.value !== "") patient[name] = Number(r.value);
        return;
      }
      var input = document.getElementById("f-" + name);
      if (s.type === "categorical") { if (input.value !== "") patient[name] = input.value; return; }
      var p = parseNumber(input.value);
      if (p.empty) {
        // a baseline may be empty: the server predicts what the baselines entered allow, or names what is needed
      } else if (p.bad) {
        errors.push({ name: name, message: s.label + " must be a number, like 42 or 42.5." });
      } else if (s.range && (p.value < s.range[0] || p.value > s.range[1])) {
        errors.push({ name: name, message: badRange(s) });
      } else {
        patient[name] = p.value;
      }
    });
    return { patient: patient, comparator: document.getElementById("f-comparator").value, errors: errors };
  }
  function clearErrors() {
    form.querySelectorAll(".invalid").forEach(function (f) { f.classList.remove("invalid"); });
    form.querySelectorAll(".error-msg").forEach(function (m) { m.hidden = true; m.textContent = ""; });
    form.querySelectorAll("[aria-invalid]").forEach(function (i) { i.removeAttribute("aria-invalid"); });
    var sum = document.getElementById("error-summary");
    sum.hidden = true; sum.querySelector("ul").textContent = "";
  }
  function showErrors(errors) {
    var sum = document.getElementById("error-summary"), list = sum.querySelector("ul");
    errors.forEach(function (e) {
      var wrap = e.name ? form.querySelector('[data-field="' + e.name + '"]') : null;
      if (wrap) {
        wrap.classList.add("invalid");
        var m = document.getElementById("f-" + e.name + "-error");
        m.textContent = e.message; m.hidden = false;
        var input = document.getElementById("f-" + e.name);
        if (input) input.setAttribute("aria-invalid", "true");
        var target = input && input.tagName === "DIV" ? input.querySelector("input") : input;
        var a = el("a", { href: "#f-" + e.name, text: e.message });
        a.addEventListener("click", function (ev) { ev.preventDefault(); if (target) target.focus(); });
        list.appendChild(el("li", {}, [a]));
      } else {
        list.appendChild(el("li", { text: e.message }));
      }
    });
    sum.hidden = false; sum.focus();
  }
  function status(text, problem) {
    var s = document.getElementById("form-status");
    s.textContent = text; s.classList.toggle("problem", !!problem);
  }

  function serverErrors(body) {
    var out = [];
    ((body && body.detail) || []).forEach(function (d) {
      var f = typeof d.field === "string" ? d.field.replace(/^patient\./, "") : "";
      if (specs[f] && d.type === "missing") out.push({ name: f, message: "Enter " + lower(specs[f].label) +
        ": " + (d.msg || "required").replace(/^required field is missing: /, "") + "." });
      else if (specs[f]) out.push({ name: f, message: specs[f].type === "binary" || specs[f].type === "categorical"
        ? specs[f].label + ": choose one of the options." : badRange(specs[f]) });
      else if (f === "comparator") out.push({ name: "comparator", message: "Choose one of the listed alternatives." });
      else out.push({ message: (f ? f + ": " : "") + (d.msg || "invalid value") });
    });
    if (!out.length) out.push({ message: (body && body.message) || "The server refused the input." });
    return out;
  }

  function submit(ev) {
    ev.preventDefault();
    clearErrors();
    var r = readForm();
    if (r.errors.length) { status("Please correct the highlighted fields.", true); showErrors(r.errors); return; }
    var button = document.getElementById("calc-submit");
    button.disabled = true; form.setAttribute("aria-busy", "true"); status("Calculating\u2026");
    fetch(cfg.score_url, {
      method: "POST", credentials: "same-origin", cache: "no-store", referrerPolicy: "no-referrer",
      headers: { "Content-Type": "application/json", "Accept": "application/json" },
      body: JSON.stringify({ patient: r.patient, comparator: r.comparator })
    }).then(function (resp) {
      return resp.json().catch(function () { return {}; }).then(function (body) { return { code: resp.status, body: body }; });
    }).then(function (x) {
      if (x.code === 200) { render(x.body); status("Result updated below."); return; }
      if (x.code === 422) { status("The server could not use some values.", true); showErrors(serverErrors(x.body)); return; }
      var msg = {
        401: "This server needs an API key: reload the page and enter the key when the browser asks.",
        403: "This server has no API keys and answers only on its own computer.",
        413: "The request is too large."
      }[x.code] || ("The model could not score this patient (error " + x.code + ")" +
        (x.body && x.body.request_id ? "; quote request id " + x.body.request_id : "") + ".");
      status(msg, true);
    }).catch(function () {
      status("Could not reach the server. Check the connection and try again.", true);
    }).then(function () { button.disabled = false; form.removeAttribute("aria-busy"); });
  }

  // ---------------------------------------------------------------- charts (SVG)
  function scale(d0, d1, r0, r1) { return function (v) { return r0 + (v - d0) / (d1 - d0) * (r1 - r0); }; }
  function niceStep(span) {
    var steps = [1, 2, 5, 10, 20, 25, 50, 100];
    for (var i = 0; i < steps.length; i++) if (span / steps[i] <= 6) return steps[i];
    return 100;
  }
  function axis(g, x, lo, hi, step, y0, y1) {
    for (var t = Math.ceil(lo / step) * step; t <= hi + 1e-9; t += step) {
      g.appendChild(sv("line", { "class": "grid", x1: x(t), x2: x(t), y1: y0, y2: y1 }));
      g.appendChild(sv("text", { x: x(t), y: y1 + 14, "text-anchor": "middle", text: fmt(t, 0) }));
    }
    g.appendChild(sv("line", { "class": "axis", x1: x(lo), x2: x(hi), y1: y1, y2: y1 }));
  }
  function expectedChart(rows, label) {
    var W = 320, top = 6, rowH = 40, H = top + rows.length * rowH + 22, x = scale(0, 100, 12, W - 12);
    var s = sv("svg", { "class": "chart", viewBox: "0 0 " + W + " " + H, role: "img", "aria-label": label });
    var g = sv("g"); s.appendChild(g);
    axis(g, x, 0, 100, 20, top, top + rows.length * rowH);
    rows.forEach(function (r, i) {
      var y = top + i * rowH;
      g.appendChild(sv("text", { x: 12, y: y + 13, text: r.label + ": " + fmt(r.v) }));
      var iv = pair(r.interval);
      if (iv) g.appendChild(sv("line", { "class": "range " + r.ci, x1: x(iv[0]), x2: x(iv[1]), y1: y + 27, y2: y + 27 }));
      if (num(r.v)) g.appendChild(sv("circle", { "class": r.dot, cx: x(r.v), cy: y + 27, r: 6 }));
    });
    return s;
  }
  function benefitChart(b, swe, label) {
    var ci = pair(b.ci), pi = pair(b.prediction_interval), vals = [0, b.estimate];
    if (ci) vals = vals.concat(ci); if (pi) vals = vals.concat(pi); if (num(swe)) vals.push(swe);
    var lo = Math.min.apply(null, vals.filter(num)), hi = Math.max.apply(null, vals.filter(num));
    var step = niceStep(Math.max(hi - lo, 10));
    lo = Math.floor(lo / step) * step; hi = Math.ceil(hi / step) * step;
    if (hi - lo < step * 2) hi = lo + step * 2;
    var W = 320, H = 92, x = scale(lo, hi, 12, W - 12), y = 52;
    var s = sv("svg", { "class": "chart", viewBox: "0 0 " + W + " " + H, role: "img", "aria-label": label });
    var g = sv("g"); s.appendChild(g);
    axis(g, x, lo, hi, step, 26, 70);
    g.appendChild(sv("line", { "class": "zero", x1: x(0), x2: x(0), y1: 26, y2: 70 }));
    g.appendChild(sv("text", { x: 12, y: 13, text: "Benefit: " + fmt(b.estimate) + " points" }));
    if (num(swe)) {
      g.appendChild(sv("line", { "class": "swe", x1: x(swe), x2: x(swe), y1: 20, y2: 70 }));
      var right = x(swe) > W - 90;
      g.appendChild(sv("text", { "class": "swe-label", x: x(swe) + (right ? -4 : 4), y: 30,
        "text-anchor": right ? "end" : "start", text: "worthwhile " + fmt(swe) }));
    }
    if (pi) g.appendChild(sv("line", { "class": "range pi", x1: x(pi[0]), x2: x(pi[1]), y1: y, y2: y }));
    if (ci) g.appendChild(sv("line", { "class": "range ci", x1: x(ci[0]), x2: x(ci[1]), y1: y, y2: y }));
    if (num(b.estimate)) g.appendChild(sv("circle", { "class": "dot-ben", cx: x(b.estimate), cy: y, r: 6.5 }));
    return s;
  }
  function iconArray(n, cls, label) {
    var s = sv("svg", { "class": "chart", viewBox: "0 0 140 160", role: "img", "aria-label": label });
    for (var i = 0; i < 100; i++) {
      var cx = (i % 10) * 14, cy = Math.floor(i / 10) * 16, c = i < n ? cls : "icon-off";
      var g = sv("g", { "class": c, transform: "translate(" + cx + "," + cy + ")" });
      g.appendChild(sv("circle", { cx: 7, cy: 4, r: 2.8 }));
      g.appendChild(sv("path", { d: "M2.5 15 Q2.5 8 7 8 Q11.5 8 11.5 15 Z" }));
      s.appendChild(g);
    }
    return s;
  }

  // ---------------------------------------------------------------- the result
  function followUp(f) { return cfg.follow_up_labels[f] || (f ? f + "-term follow-up" : "follow-up"); }
  function outcomeLabel(o) { return cfg.outcome_labels[o] || o; }
  function isRecovery(t) { return "p_intervention" in t || (t.scale || "").indexOf("probability") === 0 || t.outcome === "global_recovery"; }
  function ivText(prefix, iv, unit) { return iv ? prefix + fmt(iv[0]) + " to " + fmt(iv[1]) + (unit || "") : ""; }

  // the benefit's two intervals, each with what it is about (predict/verdict.py labels)
  function intervalList(b, f, unit) {
    var ci = pair(b.ci), pi = pair(b.prediction_interval), ul = el("ul", { "class": "intervals" });
    var txt = function (iv) { return f(iv[0]) + " to " + f(iv[1]) + unit; };
    ul.appendChild(el("li", { "class": "range iv-ci" }, [el("strong", { text: "95% confidence interval " + (ci ? txt(ci) : "not available") }),
      ": the average for patients like this one."]));
    ul.appendChild(el("li", { "class": "range iv-pi" }, pi && ci && b.pi_equals_ci
      ? [el("strong", { text: "95% prediction interval " + txt(pi) }), ": for a new clinic \u2014 the same as the confidence interval, " +
         "because the trials showed no differences between them (\u03c4 = 0); it is not a range for this individual patient."]
      : [el("strong", { text: "95% prediction interval " + (pi ? txt(pi) : "not available") }),
         ": for a patient like this treated in a new clinic (adds the differences between trials)."]));
    return ul;
  }

  // the verdict's probabilities (predict/verdict.py), each said to be model-based, from the prediction interval
  function verdictLines(card, v, thr) {
    if (!v) return;
    card.appendChild(el("p", { "class": "verdict-probability" }, [
      modelBased() + " that the benefit exceeds it: ", el("strong", { "class": "v-prob", text: pctText(v, "probability") }),
      " for a patient like this in a new clinic" + (num(v.probability_average_patient) && !v.pi_equals_ci
        ? " (" + pctText(v, "probability_average_patient") + " for the average patient like this)" : "") +
      ", from the 95% prediction interval. Very likely \u2265 90%, likely 66\u201390%, possibly 33\u201366%, unlikely < 33%."]));
    if (num(v.probability_harm) && (v.level === "uncertain" || pctText(v, "probability_harm") !== "<1%"))
      card.appendChild(el("p", { "class": "verdict-harm" }, [
        modelBased() + " of a worthwhile harm (the benefit below \u2212" + thr + ") for a patient like this in a new clinic: ",
        el("strong", { "class": "v-harm", text: pctText(v, "probability_harm") }),
        ". Uncertain when a worthwhile benefit and a worthwhile harm are both at least 10% likely."]));
    if (v.confidence_text) card.appendChild(el("p", { "class": "verdict-confidence" }, [
      el("strong", { text: v.confidence_text.charAt(0).toUpperCase() + v.confidence_text.slice(1) + "." })]));
  }

  function continuousCard(t, comp) {
    var name = outcomeLabel(t.outcome), fu = followUp(t.follow_up), b = t.benefit || {};
    var ex = t.intervention || {}, cp = t.comparator || {};
    var swe = t.smallest_worthwhile && num(t.smallest_worthwhile.threshold) ? t.smallest_worthwhile.threshold : null;
    var card = el("section", { "class": "card", "data-outcome": t.outcome }, [el("h3", { text: name + " at " + fu })]);
    if (t.available === false) { card.appendChild(el("p", { text: "This model has no prediction against " + comp + " for this outcome." })); return card; }
    var noIv = " (no interval available)";
    card.appendChild(el("p", { "class": "lead" }, [
      "Expected score: ", el("strong", { "class": "v-ex", text: fmt(ex.expected) }), " with " + act(),
      span(pair(ex.interval) ? ivText(" (95% CI ", pair(ex.interval), ")") : noIv, "range arm-ex"), ", ",
      el("strong", { "class": "v-cmp", text: fmt(cp.expected) }), " with " + comp,
      span(pair(cp.interval) ? ivText(" (95% CI ", pair(cp.interval), ")") : noIv, "range arm-cmp"),
      " (0\u2013100, higher = worse)."]));
    var dir = num(b.estimate) ? (b.estimate >= 0 ? " in favour of " + act() : " in favour of " + comp) : "";
    card.appendChild(el("p", {}, ["Difference: ", el("strong", { "class": "v-ben", text: fmt(Math.abs(b.estimate)) + " points" }), dir, "."]));
    card.appendChild(intervalList(b, function (v) { return fmt(v); }, " points"));
    var v = t.verdict;
    var words = v ? v.text.charAt(0).toUpperCase() + v.text.slice(1) : "Smallest worthwhile effect not assessed";
    card.appendChild(el("p", {}, [el("span", { "class": "verdict swe-verdict " + (v ? v.level : "unknown"), text: words }),
      num(swe) ? " \u2014 for this patient " + fmt(swe) + " points (" + ((t.smallest_worthwhile.rule) || "20% of the baseline score") + ")." : ""]));
    verdictLines(card, v, fmt(v ? v.threshold : null) + " points");
    var armIv = pair(ex.interval) || pair(cp.interval);
    card.appendChild(el("div", { "class": "charts" }, [
      el("figure", {}, [expectedChart([
        { label: upper(act()), v: ex.expected, interval: ex.interval, dot: "dot-ex", ci: "ci-ex" },
        { label: comp.charAt(0).toUpperCase() + comp.slice(1), v: cp.expected, interval: cp.interval, dot: "dot-cmp", ci: "ci-cmp" }],
        "Expected " + lower(name) + " score: " + fmt(ex.expected) + " with " + act() + ", " + fmt(cp.expected) + " with " + comp),
        el("figcaption", { text: "Expected score on 0\u2013100 (lower is better); bars: 95% confidence intervals." + (armIv ? "" :
          " No interval is available for each arm: the model gives intervals for the difference only.") })]),
      el("figure", {}, [benefitChart(b, swe, "Benefit of " + act() + ": " + fmt(b.estimate) + " points; smallest worthwhile effect " + fmt(swe)),
        el("figcaption", { text: "Difference (" + comp + " minus " + act() + "): right of 0 favours " + act() + ". Dashed line: smallest worthwhile effect." }),
        el("figcaption", { "class": "range", text: "Thick bar: 95% confidence interval (average patient like this); thin line: 95% prediction interval (a new clinic)." })])]));
    return card;
  }

  function recoveryCard(t, comp) {
    var pe = "p_intervention" in t ? t.p_intervention : (t.intervention || {}).expected;
    var pc = "p_comparator" in t ? t.p_comparator : (t.comparator || {}).expected;
    var d = t.difference || t.benefit || {}, ne = pct(pe), nc = pct(pc);
    var card = el("section", { "class": "card", "data-outcome": t.outcome || "global_recovery" },
      [el("h3", { text: outcomeLabel(t.outcome || "global_recovery") + " at " + followUp(t.follow_up) })]);
    if (t.available === false || ne === null || nc === null) {
      card.appendChild(el("p", { text: "This model has no prediction against " + comp + " for this outcome." })); return card;
    }
    var per = function (iv) { return fmt(iv[0] * 100, 0) + "\u2013" + fmt(iv[1] * 100, 0); };
    var ie = pair((t.intervention || {}).interval), ic = pair((t.comparator || {}).interval);
    var sentence = ne + " of 100" + (ie ? " (" + per(ie) + ")" : " (no interval available)") +
      " people like this " + good(t) + " with " + act() + ", " + nc + " of 100" + (ic ? " (" + per(ic) + ")" : " (no interval available)") +
      " with " + comp + ".";
    card.appendChild(el("p", { "class": "lead recovery-sentence", text: sentence }));
    card.appendChild(el("div", { "class": "icons" }, [
      el("figure", {}, [iconArray(ne, "icon-on-ex", ne + " of 100 " + good(t) + " with " + act()),
        el("figcaption", { text: upper(act()) + ": " + ne + " of 100" })]),
      el("figure", {}, [iconArray(nc, "icon-on-cmp", nc + " of 100 " + good(t) + " with " + comp),
        el("figcaption", { text: comp.charAt(0).toUpperCase() + comp.slice(1) + ": " + nc + " of 100" })])]));
    var diff = ne - nc;  // of the rounded counts, so that it matches the icon arrays
    card.appendChild(el("p", {}, [
      "Difference: " + Math.abs(diff) + " " + (diff >= 0 ? "more" : "fewer") + " per 100 " + good(t) + " with " + act() + "."]));
    card.appendChild(intervalList(d, function (v) { return signed(v * 100, 0); }, " per 100"));
    var v = t.verdict;  // a binary outcome with a configured smallest worthwhile difference
    if (v) {
      card.appendChild(el("p", {}, [el("span", { "class": "verdict swe-verdict " + v.level, text: upper(v.text) }),
        " \u2014 smallest worthwhile difference " + fmt(v.threshold * 100, 0) + " per 100."]));
      verdictLines(card, v, fmt(v.threshold * 100, 0) + " per 100");
    }
    return card;
  }

  function factorsCard(res, comp) {
    var f = res.top_factors || [], card = el("section", { "class": "card", id: "factors" }, [el("h3", { text: "What drives this prediction" })]);
    if (!f.length) { card.appendChild(el("p", { text: "No factor explanation is available for this prediction." })); return card; }
    var units = ((res.explained && res.explained.units) || f[0].units || "").replace(/_/g, " ");
    var given = {};
    (res.missing || []).forEach(function (m) { given[m.name] = false; });
    card.appendChild(el("p", { text: "The largest contributions of the inputs you entered to this patient's predicted benefit of " + act() + ". " +
      "Positive values favour " + act() + ", negative " + comp + ". Units: " + units + "." +
      (res.explained && res.explained.uncertainty ? " " + upper(res.explained.uncertainty) + "." : "") }));
    var max = Math.max.apply(null, f.map(function (x) { return Math.abs(x.contribution) || 0; })) || 1;
    var ul = el("ul", { "class": "factors" });
    f.forEach(function (x) {
      var w = 60 * Math.abs(x.contribution) / max, pos = x.contribution >= 0;
      var bar = sv("svg", { "class": "bar", viewBox: "0 0 130 14", preserveAspectRatio: "none", "aria-hidden": "true" }, [
        sv("line", { "class": "zero", x1: 65, x2: 65, y1: 0, y2: 14 }),
        sv("rect", { "class": pos ? "bar-pos" : "bar-neg", x: pos ? 65 : 65 - w, y: 2, width: Math.max(w, 1), height: 10 })]);
      var lab = (x.label || x.name) + (given[x.name] === false ? " (not given)" : "");  // not given: older servers only
      ul.appendChild(el("li", {}, [span(lab, "lab"), bar,
        span(signed(x.contribution, 1) + " (favours " + (pos ? act() : comp) + ")", "val")]));
    });
    card.appendChild(ul);
    var imp = res.imputed_factors || [];
    if (imp.length) card.appendChild(el("p", { "class": "hint imputed-factors" }, ["Not entered, so not a reason about this patient: " +
      "the model filled in " + imp.map(function (x) { return (x.label || x.name) + " (" + signed(x.contribution, 1) + ")"; }).join(", ") +
      " from the entered inputs, and these imputed values moved the prediction."]));
    if (res.explained && res.explained.method) card.appendChild(el("p", { "class": "hint", text: "Method: " + res.explained.method + "." }));
    return card;
  }

  function missingCard(res) {
    var m = res.missing || [], card = el("section", { "class": "card", id: "missing" }, [el("h3", { text: "What was missing and how it was handled" })]);
    if (!m.length) { card.appendChild(el("p", { text: "Nothing was missing: every input was given." })); return card; }
    var groups = {}, keys = [];
    m.forEach(function (x) {
      var h = x.handled_as || "handled by the model";
      if (!(h in groups)) { groups[h] = []; keys.push(h); }
      groups[h].push(specs[x.name] ? specs[x.name].label : x.name);
    });
    var dl = el("dl", { "class": "missing" });
    keys.forEach(function (h) {
      dl.appendChild(el("dt", { text: "Not given: " + groups[h].join(", ") }));
      dl.appendChild(el("dd", { text: "Handled as: " + h }));
    });
    card.appendChild(dl);
    return card;
  }

  function render(body) {
    var res = body.result || {}, comp = cfg.comparators[body.comparator] || body.comparator;
    var out = document.getElementById("results-body");
    out.textContent = "";
    if (body.synthetic_data_warning) {
      out.appendChild(el("div", { "class": "banner", role: "note" }, [el("strong", { text: "Synthetic data \u2014 not for clinical use. " }),
        body.synthetic_data_warning]));
    }
    out.appendChild(el("p", { text: upper(act()) + " compared with " + comp + ", for a patient with the values entered." }));
    // before the numbers, not after them: a patient unlike the trials (the prediction extrapolates,
    // its intervals widened), values outside the training data, heavy imputation, few trials
    if ((res.warnings || []).length) {
      var ul = el("ul", { "class": "warnings" });
      res.warnings.forEach(function (w) { ul.appendChild(el("li", { text: w })); });
      out.appendChild(el("section", { "class": "card", id: "warnings", role: "note" }, [
        el("h3", { text: "Warnings: read before the numbers" }), ul]));
    }
    var tasks = Object.keys(res.outcomes || {}).map(function (k) { var t = res.outcomes[k]; t.task = k; t.outcome = t.outcome || k; return t; });
    var rank = function (t) { var i = ["pain", "function"].indexOf(t.outcome); return isRecovery(t) ? 9 : (i < 0 ? 5 : i); };
    tasks.sort(function (a, b) { return rank(a) - rank(b); });
    tasks.forEach(function (t) { out.appendChild(isRecovery(t) ? recoveryCard(t, comp) : continuousCard(t, comp)); });
    if ((body.not_predicted || []).length) {
      var np = el("ul", {});
      body.not_predicted.forEach(function (x) {
        np.appendChild(el("li", { text: outcomeLabel(x.outcome) + ": needs " + x.needs.map(function (n) {
          return lower(specs[n] ? specs[n].label : n); }).join(" or ") + ", which was not entered." }));
      });
      out.appendChild(el("section", { "class": "card", id: "not-predicted" }, [el("h3", { text: "Not predicted" }), np]));
    }
    out.appendChild(factorsCard(res, comp));
    out.appendChild(missingCard(res));
    out.appendChild(el("p", { "class": "hint" }, ["Model " + (body.model_id || cfg.model_id) + ". ",
      el("a", { href: "/calculator/model-card", text: "Read the model card" }), " for its data, validation and limits."]));
    var section = document.getElementById("results");
    section.hidden = false;
    document.getElementById("results-title").focus();
  }

  // ---------------------------------------------------------------- start
  function start() {
    cfg = JSON.parse(document.getElementById("calc-config").textContent);
    form = document.getElementById("calc-form");
    cfg.baselines.concat(cfg.covariates).forEach(function (s) { specs[s.name] = s; order.push(s.name); });
    form.addEventListener("submit", submit);
    form.addEventListener("reset", function () {
      clearErrors(); status("");
      document.getElementById("results").hidden = true;
      document.getElementById("results-body").textContent = "";
    });
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start); else start();
})();
