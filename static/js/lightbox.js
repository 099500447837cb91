/* The lightbox: a full image over the page, for the gallery, an image's page and a generation's
   page. Any element with [data-lightbox-item] is one image (its data-* attributes say what to
   show); a click on its [data-lightbox-open] link opens it (the link itself goes to the image's
   page without JavaScript, or with a modifier key). ← and → move through the items on the page in
   order (new ones appended by "Load more" or arriving live included), Esc closes, and on touch
   screens a swipe left or right moves too. Loaded once from base.html; listens on the document,
   so htmx-swapped content needs no set-up. */
(function () {
  "use strict";
  if (window.nerLightbox) return;
  window.nerLightbox = true;

  var current = null; // the [data-lightbox-item] shown

  function dialog() { return document.getElementById("lightbox"); }

  function items() {
    return Array.prototype.filter.call(
      document.querySelectorAll("[data-lightbox-item]"),
      function (item) { return item.dataset.full; }
    );
  }

  function favouriteButton(item) {
    return item && item.querySelector(".fav-form button");
  }

  function show(item) {
    var box = dialog();
    if (!box || !item) return;
    current = item;
    var d = item.dataset;
    var img = box.querySelector(".lb-image");
    img.src = d.full;
    img.alt = d.prompt || "";
    box.querySelector(".lb-prompt").textContent = d.prompt || "";
    box.querySelector(".lb-meta").textContent = d.meta || "";
    box.querySelector(".lb-detail").href = d.detail || "#";
    box.querySelector(".lb-download").href = d.download || d.full;
    var vary = box.querySelector(".lb-vary");
    vary.hidden = !d.vary;
    vary.href = d.vary || "#";
    var collect = box.querySelector(".lb-collect [name=images]");
    if (collect) collect.value = d.id || "";
    syncFavourite();
    var all = items();
    var at = all.indexOf(item);
    box.querySelector(".lb-prev").disabled = at <= 0;
    box.querySelector(".lb-next").disabled = at < 0 || at >= all.length - 1;
    if (!box.open) box.showModal();
  }

  function syncFavourite() {
    var box = dialog();
    var source = favouriteButton(current);
    var button = box && box.querySelector(".lb-fav");
    if (!button) return;
    button.hidden = !source;
    if (!source) return;
    var on = source.getAttribute("aria-pressed") === "true";
    button.textContent = on ? "♥ Favourite" : "♡ Favourite";
    button.setAttribute("aria-pressed", on ? "true" : "false");
  }

  function step(delta) {
    var all = items();
    var at = all.indexOf(current);
    var next = all[at + delta];
    if (next) show(next);
  }

  function close() {
    var box = dialog();
    if (box && box.open) box.close();
  }

  document.addEventListener("click", function (event) {
    var open = event.target.closest("[data-lightbox-open]");
    if (open && !(event.metaKey || event.ctrlKey || event.shiftKey || event.button === 1)) {
      var item = open.closest("[data-lightbox-item]");
      if (item && item.dataset.full && dialog()) {
        event.preventDefault();
        event.stopPropagation(); // not a boosted navigation
        show(item);
        return;
      }
    }
    var control = event.target.closest("#lightbox [data-lb]");
    if (control) {
      var action = control.dataset.lb;
      if (action === "prev") step(-1);
      else if (action === "next") step(1);
      else if (action === "close") close();
      else if (action === "favourite") {
        var source = favouriteButton(current);
        if (source) source.click(); // the card's own toggle: one way to favourite
      }
      return;
    }
    if (event.target === dialog()) close(); // a click on the backdrop
  }, true);

  document.addEventListener("keydown", function (event) {
    var box = dialog();
    if (!box || !box.open) return;
    if (event.key === "ArrowLeft") { event.preventDefault(); step(-1); }
    else if (event.key === "ArrowRight") { event.preventDefault(); step(1); }
    // Esc: the dialog closes itself
  });

  // The card's favourite form is swapped by htmx: show its new state.
  document.addEventListener("htmx:afterSwap", function () {
    if (current && !document.contains(current)) current = null;
    syncFavourite();
  });

  var touchX = null;
  document.addEventListener("touchstart", function (event) {
    if (event.target.closest("#lightbox .lb-stage")) touchX = event.touches[0].clientX;
  }, { passive: true });
  document.addEventListener("touchend", function (event) {
    if (touchX === null) return;
    var dx = event.changedTouches[0].clientX - touchX;
    touchX = null;
    if (Math.abs(dx) > 50) step(dx < 0 ? 1 : -1);
  }, { passive: true });
})();
