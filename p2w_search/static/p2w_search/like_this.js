/* The "like this, but ..." boxes in the browser; the pages work without it.
 *
 * - A form that searches says so while the page waits (encoding a photo takes a second or two), in
 *   a role="status" that is on the page from the start, empty, so that screen readers announce it.
 * - A photo larger than the form's data-max-side (pixels, long side) or data-max-bytes is scaled
 *   down to a JPEG here before it is sent: a phone's 12-megapixel photo becomes a few hundred kB.
 * - A photo can be dropped on the box; the chosen photo is previewed; a suggestion fills the change.
 */
(function () {
  "use strict";
  if (window.p2wLikeThis) { return; }
  window.p2wLikeThis = true;

  function say(form, text) {
    var status = form.querySelector(".p2w-busy");
    if (status) { status.textContent = text; }
    form.classList.add("p2w-is-busy");
    form.setAttribute("aria-busy", "true");
  }

  function chosenInput(form) {
    var inputs = form.querySelectorAll('input[type="file"][name="photo"]');
    for (var i = inputs.length - 1; i >= 0; i--) {
      if (inputs[i].files && inputs[i].files.length) { return inputs[i]; }
    }
    return null;
  }

  function decode(file) {
    if (window.createImageBitmap) {
      return createImageBitmap(file, { imageOrientation: "from-image" });
    }
    return new Promise(function (resolve, reject) {
      var img = new Image();
      img.onload = function () { resolve(img); };
      img.onerror = reject;
      img.src = URL.createObjectURL(file);
    });
  }

  /* Resolve with a smaller JPEG File, or with null when the photo can be sent as it is. */
  function scaled(file, maxSide, maxBytes) {
    return decode(file).then(function (image) {
      var width = image.width, height = image.height, side = Math.max(width, height);
      if (side <= maxSide && file.size <= maxBytes) { return null; }
      var ratio = Math.min(1, maxSide / side), quality = 0.9;
      function attempt(r) {
        var canvas = document.createElement("canvas");
        canvas.width = Math.max(1, Math.round(width * r));
        canvas.height = Math.max(1, Math.round(height * r));
        var ctx = canvas.getContext("2d");
        ctx.fillStyle = "#fff";  /* a transparent PNG becomes a JPEG on white, as the server would */
        ctx.fillRect(0, 0, canvas.width, canvas.height);
        ctx.drawImage(image, 0, 0, canvas.width, canvas.height);
        return new Promise(function (resolve) { canvas.toBlob(resolve, "image/jpeg", quality); })
          .then(function (blob) {
            if (blob && blob.size > maxBytes && r > 0.05) { return attempt(r * 0.7); }
            return blob;
          });
      }
      return attempt(ratio).then(function (blob) {
        if (!blob) { return null; }
        var name = (file.name || "photo").replace(/\.[^.]*$/, "") + ".jpg";
        return new File([blob], name, { type: "image/jpeg" });
      });
    });
  }

  function setFile(form, file) {
    var inputs = form.querySelectorAll('input[type="file"][name="photo"]');
    var transfer = new DataTransfer();
    transfer.items.add(file);
    inputs[0].files = transfer.files;
    for (var i = 1; i < inputs.length; i++) { inputs[i].value = ""; }
    preview(form, file);
  }

  function preview(form, file) {
    var img = form.querySelector(".p2w-drop__preview");
    if (!img || !file) { return; }
    if (img.dataset.url) { URL.revokeObjectURL(img.dataset.url); }
    img.dataset.url = URL.createObjectURL(file);
    img.src = img.dataset.url;
    img.hidden = false;
  }

  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!form.matches || !form.matches("[data-p2w-busy]")) { return; }
    say(form, form.dataset.p2wBusy);
    if (!form.matches("[data-p2w-photo]")) { return; }
    var input = chosenInput(form);
    if (!input || form.dataset.p2wScaled) { return; }
    event.preventDefault();
    var maxSide = parseInt(form.dataset.maxSide, 10) || 1600;
    var maxBytes = parseInt(form.dataset.maxBytes, 10) || 10485760;
    scaled(input.files[0], maxSide, maxBytes).then(function (file) {
      if (file) { setFile(form, file); }
    }).catch(function () {
      /* A format this browser cannot decode goes as it is: the server says whether it can use it. */
    }).then(function () {
      form.dataset.p2wScaled = "1";
      form.submit();
    });
  });

  /* Back to a page from the history: it is not waiting any more. */
  window.addEventListener("pageshow", function () {
    document.querySelectorAll(".p2w-is-busy").forEach(function (form) {
      form.classList.remove("p2w-is-busy");
      form.removeAttribute("aria-busy");
      delete form.dataset.p2wScaled;
      var status = form.querySelector(".p2w-busy");
      if (status) { status.textContent = ""; }
    });
  });

  document.addEventListener("change", function (event) {
    var input = event.target;
    if (input.matches && input.matches('[data-p2w-photo] input[type="file"]') && input.files.length) {
      var form = input.form;
      if (input !== form.querySelector('input[type="file"]')) { setFile(form, input.files[0]); }
      else { preview(form, input.files[0]); }
    }
  });

  document.addEventListener("click", function (event) {
    var chip = event.target.closest && event.target.closest("[data-p2w-fill]");
    if (!chip) { return; }
    var field = chip.form && chip.form.querySelector('input[name="change"]');
    if (field) { field.value = chip.dataset.p2wFill; field.focus(); }
  });

  function dropZone(event) { return event.target.closest && event.target.closest("[data-p2w-drop]"); }

  ["dragenter", "dragover"].forEach(function (type) {
    document.addEventListener(type, function (event) {
      var zone = dropZone(event);
      if (!zone) { return; }
      event.preventDefault();
      zone.classList.add("p2w-drop--over");
    });
  });
  document.addEventListener("dragleave", function (event) {
    var zone = dropZone(event);
    if (zone) { zone.classList.remove("p2w-drop--over"); }
  });
  document.addEventListener("drop", function (event) {
    var zone = dropZone(event);
    if (!zone) { return; }
    event.preventDefault();
    zone.classList.remove("p2w-drop--over");
    var files = event.dataTransfer && event.dataTransfer.files;
    if (files && files.length) { setFile(zone.closest("form"), files[0]); }
  });
})();
