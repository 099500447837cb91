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
    var list = document.getElementById(input.dataset.previews);
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
    if (input instanceof HTMLInputElement && input.type === "file" && input.dataset.previews) {
      showPreviews(input);
    }
  });

  ["dragenter", "dragover"].forEach(function (type) {
    document.addEventListener(type, function (event) {
      var zone = event.target.closest && event.target.closest(".dropzone");
      if (zone) zone.classList.add("dragging");
    });
  });
  ["dragleave", "drop"].forEach(function (type) {
    document.addEventListener(type, function (event) {
      var zone = event.target.closest && event.target.closest(".dropzone");
      if (zone) zone.classList.remove("dragging");
    });
  });
})();
