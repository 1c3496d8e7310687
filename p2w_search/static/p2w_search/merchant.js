/* The merchant pages' live parts, without a build step:
 * - a job's page polls its progress URL and puts the parts the server renders in place;
 * - the upload form checks the catalog file as soon as it is chosen, and counts what a
 *   full sync of it would unlist, before anything is sent for good; it refuses more image files at
 *   once than the site takes in one request (Django's limit, which would answer a bare 400).
 * Without JavaScript the pages still work: a reload shows the progress, the server checks on upload. */
(function () {
  "use strict";

  function followJob(section) {
    var url = section.dataset.progressUrl;
    var interval = parseInt(section.dataset.interval || "1000", 10);
    var failures = 0;

    function put(parts) {
      Object.keys(parts).forEach(function (name) {
        var target = document.querySelector('[data-part="' + name + '"]');
        var html = parts[name].trim();
        if (target && target.dataset.html !== html) {
          target.innerHTML = html;
          target.dataset.html = html;
        }
      });
    }

    function poll() {
      fetch(url, {headers: {"Accept": "application/json"}, credentials: "same-origin", cache: "no-store"})
        .then(function (response) {
          if (!response.ok) { throw new Error("HTTP " + response.status); }
          return response.json();
        })
        .then(function (answer) {
          failures = 0;
          put(answer.parts);
          section.dataset.finished = answer.finished ? "true" : "false";
          if (!answer.finished) { window.setTimeout(poll, interval); }
        })
        .catch(function () {
          failures += 1;  // a restart of the web server: try again, more slowly
          window.setTimeout(poll, Math.min(interval * Math.pow(2, failures), 30000));
        });
    }

    document.querySelectorAll("[data-part]").forEach(function (part) { part.dataset.html = part.innerHTML.trim(); });
    if (section.dataset.finished !== "true") { window.setTimeout(poll, interval); }
  }

  function checkUploads(form) {
    var output = document.getElementById("full-sync-count");
    var manifest = form.querySelector('input[name="manifest"]');
    var fullSync = form.querySelector('input[name="full_sync"]');
    var confirm = form.querySelector('input[name="confirm_unlist"]');
    var token = form.querySelector('input[name="csrfmiddlewaretoken"]');
    var merchant = form.querySelector('input[name="merchant"]');  // whom the form is for: the check refuses another (409)
    var asked = 0;

    /* The check's answer describes the file field, and marks it invalid when the file cannot be used:
       a screen reader on the field reads why, not only the live region's one announcement. */
    function describe() {
      var ids = (manifest.getAttribute("aria-describedby") || "").split(" ").filter(function (id) {
        return id && id !== output.id;
      });
      if (output.textContent.trim()) { ids.push(output.id); }
      manifest.setAttribute("aria-describedby", ids.join(" "));
      if (output.querySelector('[data-check="errors"]')) { manifest.setAttribute("aria-invalid", "true"); }
      else { manifest.removeAttribute("aria-invalid"); }
    }

    function check() {
      if (!manifest.files.length) { output.innerHTML = ""; describe(); return; }
      var body = new FormData();
      body.append("manifest", manifest.files[0]);
      body.append("full_sync", fullSync.checked ? "true" : "false");
      if (confirm.value) { body.append("confirm_unlist", confirm.value); }
      if (merchant) { body.append("merchant", merchant.value); }
      var mine = ++asked;
      output.setAttribute("aria-busy", "true");
      fetch(form.dataset.checkUrl, {method: "POST", body: body, credentials: "same-origin",
                                    headers: {"X-CSRFToken": token.value, "Accept": "application/json"}})
        .then(function (response) { return response.json(); })
        .then(function (answer) {
          if (mine !== asked) { return; }  // a newer check is on its way
          output.innerHTML = answer.html.trim();
          output.removeAttribute("aria-busy");
          describe();
        })
        .catch(function () { output.removeAttribute("aria-busy"); });
    }

    manifest.addEventListener("change", check);
    fullSync.addEventListener("change", check);
    confirm.addEventListener("change", check);
  }

  function limitImages(input) {
    var most = parseInt(input.dataset.maxFiles, 10);
    input.addEventListener("change", function () {
      input.setCustomValidity(input.files.length > most ?
        "Choose at most " + most + " images here, or send them as one zip." : "");
      input.reportValidity();
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    var job = document.querySelector("[data-progress-url]");
    if (job) { followJob(job); }
    var form = document.getElementById("upload-form");
    if (form && window.FormData && window.fetch) { checkUploads(form); }
    var images = document.querySelector("input[data-max-files]");
    if (images) { limitImages(images); }
    var errors = document.getElementById("upload-errors") || document.getElementById("catalog-error");
    if (errors) { errors.focus(); }
  });
})();
