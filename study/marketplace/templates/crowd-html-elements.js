// A local stand-in for MTurk's crowd HTML element library
// (https://assets.crowd.aws/crowd-html-elements.js): crowd-form and the elements of the stock
// classification templates, drawn with plain HTML controls. As on MTurk, crowd-form submits
// every answer as one field, taskAnswers: a JSON array holding one object of name -> value.
(function () {
  "use strict";
  function param(name) {
    var m = new RegExp("[?&]" + name + "=([^&#]*)").exec(window.location.href);
    return m ? decodeURIComponent(m[1]) : "";
  }
  function list(text) {  // categories="['Yes', 'No']"
    try { return JSON.parse((text || "[]").replace(/'/g, '"')); } catch (e) { return []; }
  }
  function el(tag, attrs, text) {
    var e = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) { e.setAttribute(k, attrs[k]); });
    if (text != null) { e.textContent = text; }
    return e;
  }

  // A classifier: a header, what to classify, one radio button per category.
  function classifier(host, target) {
    var name = host.getAttribute("name") || "category";
    var box = el("div", {"class": "crowd-classifier"});
    if (host.getAttribute("header")) { box.appendChild(el("h3", {}, host.getAttribute("header"))); }
    if (target) { box.appendChild(target); }
    list(host.getAttribute("categories")).forEach(function (c, i) {
      var label = el("label", {"style": "display:block"});
      var input = el("input", {"type": "radio", "name": "crowd-classifier-" + name,
                               "value": c, "id": name + "-" + i});
      label.appendChild(input);
      label.appendChild(document.createTextNode(" " + c));
      box.appendChild(label);
    });
    var short = host.querySelector("short-instructions");
    if (short) { short.style.display = "block"; box.appendChild(short); }
    var full = host.querySelector("full-instructions");
    if (full) { full.style.display = "none"; }
    host.crowdValue = function () {
      var picked = box.querySelector("input[type=radio]:checked");
      return picked ? {label: picked.value} : undefined;
    };
    host.crowdRequired = true;
    host.appendChild(box);
  }

  function define(name, connect) {
    if (!window.customElements || customElements.get(name)) { return; }
    customElements.define(name, class extends HTMLElement {
      connectedCallback() { if (!this.crowdDrawn) { this.crowdDrawn = true; connect(this); } }
    });
  }

  define("crowd-image-classifier", function (host) {
    var img = el("img", {"src": host.getAttribute("src") || "", "alt": "",
                         "style": "max-width:100%;max-height:60vh;display:block"});
    classifier(host, img);
  });
  define("crowd-classifier", function (host) {
    var target = host.querySelector("classification-target");
    classifier(host, target ? target.cloneNode(true) : null);
    if (target) { target.style.display = "none"; }
  });
  define("crowd-input", function (host) {
    var input = el("input", {"type": host.getAttribute("type") || "text",
                             "name": host.getAttribute("name") || ""});
    if (host.hasAttribute("required")) { input.required = true; }
    if (host.getAttribute("label")) { host.appendChild(el("label", {}, host.getAttribute("label"))); }
    host.appendChild(input);
  });
  define("crowd-text-area", function (host) {
    var area = el("textarea", {"name": host.getAttribute("name") || "", "rows": "4", "cols": "60"});
    if (host.hasAttribute("required")) { area.required = true; }
    host.appendChild(area);
  });
  define("crowd-slider", function (host) {
    host.appendChild(el("input", {"type": "range", "name": host.getAttribute("name") || "",
                                  "min": host.getAttribute("min") || "0",
                                  "max": host.getAttribute("max") || "100",
                                  "step": host.getAttribute("step") || "1"}));
  });
  define("crowd-checkbox", function (host) {
    var box = el("input", {"type": "checkbox", "name": host.getAttribute("name") || ""});
    var label = el("label", {});
    label.appendChild(box);
    label.appendChild(document.createTextNode(" " + host.textContent.trim()));
    host.textContent = "";
    host.appendChild(label);
  });
  // Radio buttons of one crowd-radio-group exclude each other; each reports
  // {value: checked} under its own name.
  var groups = 0;
  define("crowd-radio-button", function (host) {
    var group = host.closest("crowd-radio-group");
    if (group && !group.crowdGroup) { group.crowdGroup = "crowd-radio-" + (++groups); }
    var value = host.getAttribute("value") || "on";
    var input = el("input", {"type": "radio", "value": value,
                             "name": group ? group.crowdGroup : "crowd-radio-" + (++groups)});
    var label = el("label", {});
    label.appendChild(input);
    label.appendChild(document.createTextNode(" " + host.textContent.trim()));
    host.textContent = "";
    host.appendChild(label);
    host.crowdValue = function () { var v = {}; v[value] = input.checked; return v; };
  });
  define("crowd-radio-group", function (host) { host.style.display = "block"; });
  define("crowd-button", function (host) {
    host.style.cursor = "pointer";
    host.setAttribute("role", "button");
  });
  define("crowd-form", function (host) {
    var flatten = host.getAttribute("answer-format") === "flatten-objects";
    var form = el("form", {"method": "post", "id": "crowd-form-submit",
                           "action": (param("turkSubmitTo") || "") + "/mturk/externalSubmit"});
    form.appendChild(el("input", {"type": "hidden", "name": "assignmentId",
                                  "value": param("assignmentId")}));
    var answers = el("input", {"type": "hidden", "name": "taskAnswers"});
    form.appendChild(answers);
    host.appendChild(form);
    var preview = param("assignmentId") === "ASSIGNMENT_ID_NOT_AVAILABLE";

    function collect() {
      var out = {};
      host.querySelectorAll("input[name], select[name], textarea[name]").forEach(function (f) {
        if (f.form === form || f.name.indexOf("crowd-") === 0) { return; }
        if (f.type === "radio") {
          if (!(f.name in out)) { out[f.name] = {}; }
          out[f.name][f.value] = f.checked;
        } else if (f.type === "checkbox") {
          out[f.name] = {on: f.checked};
        } else if (f.type === "range" || f.type === "number") {
          out[f.name] = f.value === "" ? null : Number(f.value);
        } else {
          out[f.name] = f.value;
        }
      });
      host.querySelectorAll("*").forEach(function (e) {
        if (typeof e.crowdValue === "function") {
          var v = e.crowdValue();
          if (v !== undefined) { out[e.getAttribute("name") || "category"] = v; }
        }
      });
      if (!flatten) { return out; }
      var flat = {};
      (function walk(prefix, v) {
        if (v && typeof v === "object") {
          Object.keys(v).forEach(function (k) { walk(prefix ? prefix + "." + k : k, v[k]); });
        } else { flat[prefix] = v; }
      })("", out);
      return flat;
    }
    function missing() {
      var lacking = [];
      host.querySelectorAll("*").forEach(function (e) {
        if (e.crowdRequired && e.crowdValue() === undefined) { lacking.push(e); }
      });
      host.querySelectorAll("input[required], textarea[required]").forEach(function (f) {
        if (!f.value) { lacking.push(f); }
      });
      return lacking;
    }
    function submit() {
      if (preview) { return; }
      if (missing().length) { alert("Please answer every question before you submit."); return; }
      answers.value = JSON.stringify([collect()]);
      form.submit();
    }
    var button = host.querySelector("crowd-button[form-action=submit], button[type=submit], " +
                                    "input[type=submit]");
    if (!button) {  // crowd-form adds a Submit button when the page has none
      button = el("button", {"type": "button", "id": "submitButton"}, "Submit");
      host.appendChild(button);
    }
    if (preview) { button.setAttribute("disabled", ""); }
    button.addEventListener("click", function (e) { e.preventDefault(); submit(); });
  });
})();
