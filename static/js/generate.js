/* Generate page: previews of the chosen files, before anything is uploaded.
   Loaded on every visit (htmx-boosted navigation re-runs it), so it registers once and
   listens on the document. The server decodes and checks every file again. */
(function () {
  "use strict";
  if (window.nerGeneratePreviews) return;
  window.nerGeneratePreviews = true;

  function humanSize(bytes) {
    if (bytes >= 1024 * 1024) return (bytes / (1024 * 1024)).toFixed(1) + " MB";
    if (bytes >= 1024) return Math.round(bytes / 1024) + " KB";
    return bytes + " bytes";
  }

  function showPreviews(input) {
    var list = document.getElementById(input.id + "-previews");
    if (!list) return;
    list.querySelectorAll("img").forEach(function (img) { URL.revokeObjectURL(img.src); });
    list.replaceChildren();
    var maxBytes = parseInt(list.dataset.maxBytes || "0", 10);
    Array.prototype.forEach.call(input.files, function (file) {
      var item = document.createElement("li");
      var caption = document.createElement("small");
      caption.textContent = file.name + " · " + humanSize(file.size);
      if (/^image\/(jpeg|png|webp)$/.test(file.type)) {
        var img = document.createElement("img");
        img.alt = "";
        img.onerror = function () {
          item.classList.add("preview-bad");
          caption.textContent = file.name + " · cannot be read as an image";
        };
        img.src = URL.createObjectURL(file);
        item.appendChild(img);
      } else {
        item.classList.add("preview-bad");
        caption.textContent = file.name + " · not a JPEG, PNG or WebP image";
      }
      if (maxBytes && file.size > maxBytes) {
        item.classList.add("preview-bad");
        caption.textContent = file.name + " · larger than " + humanSize(maxBytes);
      }
      item.title = file.name;
      item.appendChild(caption);
      list.appendChild(item);
    });
    var zone = input.closest(".dropzone");
    if (zone) zone.classList.toggle("has-files", input.files.length > 0);
  }

  document.addEventListener("change", function (event) {
    var input = event.target;
    if (input instanceof HTMLInputElement && input.type === "file" && input.closest(".dropzone")) {
      showPreviews(input);
    }
  });

  // Dropping files anywhere on a drop zone chooses them, as the file dialog would.
  function zoneOf(event) {
    return event.target instanceof Element ? event.target.closest(".dropzone") : null;
  }
  ["dragenter", "dragover"].forEach(function (type) {
    document.addEventListener(type, function (event) {
      var zone = zoneOf(event);
      if (!zone) return;
      event.preventDefault();
      zone.classList.add("dragging");
    });
  });
  document.addEventListener("dragleave", function (event) {
    var zone = zoneOf(event);
    if (zone && !zone.contains(event.relatedTarget)) zone.classList.remove("dragging");
  });
  document.addEventListener("drop", function (event) {
    var zone = zoneOf(event);
    if (!zone) return;
    event.preventDefault();
    zone.classList.remove("dragging");
    var input = zone.querySelector("input[type=file]");
    if (!input || input.disabled || !event.dataTransfer.files.length) return;
    input.files = event.dataTransfer.files;
    input.dispatchEvent(new Event("change", { bubbles: true }));
  });
})();
