// The offer wizard's live preview and intake row editor (web/coach/offers.py). Without
// JavaScript every step still works: the preview shows what is saved, and "Add a question"
// posts the form back with one more row.
(function () {
  "use strict";

  function formatPrice(text, select) {
    var code = select ? select.value : "";
    var digits = 2;
    (select && select.dataset.digits || "").split(",").forEach(function (pair) {
      var parts = pair.split(":");
      if (parts[0] === code) { digits = parseInt(parts[1], 10); }
    });
    var m = /^\s*([0-9]{1,15})(?:[.,]([0-9]{0,9}))?\s*$/.exec(text || "");
    if (!m) { return ""; }
    var frac = (m[2] || "").replace(/0+$/, "");
    if (frac.length > digits) { return ""; }
    var whole = m[1].replace(/^0+(?=[0-9])/, "");
    return whole + (digits ? "." + (frac + "0".repeat(digits)).slice(0, digits) : "") + " " + code;
  }

  function setText(card, name, value) {
    var el = card.querySelector('[data-preview="' + name + '"]');
    if (el) { el.textContent = value; }
  }

  function livePreview(card) {
    var form = document.querySelector(".wizard-form form");
    if (!form) { return; }
    var field = function (name) { return form.elements.namedItem(name); };
    function refresh() {
      var title = field("title");
      if (title) {
        var t = title.value.trim();
        setText(card, "title", t || "Your offer's title");
        setText(card, "banner", t || "Your offer");
      }
      var desc = field("description");
      if (desc) {
        var d = desc.value.trim();
        setText(card, "description", d.length > 200 ? d.slice(0, 199) + "…" : d);
      }
      var price = field("price");
      if (price) { setText(card, "price", formatPrice(price.value, field("currency")) || "Price"); }
      var duration = field("duration_minutes");
      if (duration) { setText(card, "duration", duration.value ? duration.value + " min" : "Duration"); }
      var delivery = field("delivery");
      if (delivery && delivery.selectedOptions && delivery.selectedOptions[0]) {
        setText(card, "delivery", delivery.selectedOptions[0].textContent.replace(/ \(not set up.*\)$/, ""));
      }
      var capacity = field("capacity"), pack = field("pack_size");
      if (capacity || pack) {
        var extras = [];
        if (capacity && parseInt(capacity.value, 10) > 1) { extras.push("group of " + parseInt(capacity.value, 10)); }
        if (pack && parseInt(pack.value, 10) > 1) { extras.push("pack of " + parseInt(pack.value, 10)); }
        setText(card, "extras", extras.length ? "· " + extras.join(" · ") : "");
      }
      var style = form.querySelector('input[name="card_style"]:checked');
      if (style) {
        card.className = card.className.replace(/\bstyle-[a-z]+\b/, "style-" + style.value);
      }
      var remove = field("remove_picture");
      if (remove && remove.checked) { showPicture(card, ""); }
    }
    form.addEventListener("input", refresh);
    form.addEventListener("change", refresh);
    var file = form.querySelector('[data-preview-input="picture"]');
    if (file) {
      file.addEventListener("change", function () {
        var chosen = file.files && file.files[0];
        if (!chosen || !/^image\/(jpeg|png|webp)$/.test(chosen.type) || chosen.size > 5 * 1024 * 1024) { return; }
        var reader = new FileReader();
        reader.onload = function () { showPicture(card, String(reader.result)); };
        reader.readAsDataURL(chosen);  // a data: URL: the CSP allows img-src data:
      });
    }
  }

  function showPicture(card, url) {
    var img = card.querySelector('[data-preview="picture"]');
    var banner = card.querySelector('[data-preview="banner"]');
    if (!img || !banner) { return; }
    if (url) { img.src = url; img.hidden = false; banner.hidden = true; }
    else { img.hidden = true; banner.hidden = false; }
  }

  function intakeEditor() {
    var rows = document.getElementById("intake-rows");
    var template = document.getElementById("intake-template");
    var add = document.querySelector("[data-add-intake]");
    var total = document.querySelector('input[name="intake-TOTAL_FORMS"]');
    if (!rows || !template || !add || !total) { return; }
    var max = parseInt(rows.dataset.maxRows, 10) || 30;

    function syncRow(row) {
      var type = row.querySelector('select[name$="-type"]');
      var choices = row.querySelector("[data-intake-choices]");
      if (type && choices) { choices.hidden = type.value !== "choice"; }
      var del = row.querySelector('input[name$="-DELETE"]');
      row.classList.toggle("removed", !!(del && del.checked));
    }
    rows.querySelectorAll("[data-intake-row]").forEach(syncRow);
    rows.addEventListener("change", function (e) {
      var row = e.target.closest("[data-intake-row]");
      if (row) { syncRow(row); }
    });
    add.addEventListener("click", function (e) {
      e.preventDefault();
      var count = parseInt(total.value, 10) || 0;
      if (count >= max) { add.disabled = true; return; }
      var html = template.innerHTML.replace(/__prefix__/g, String(count));
      var holder = document.createElement("div");
      holder.innerHTML = html;
      var row = holder.firstElementChild;
      var number = row.querySelector("[data-row-number]");
      if (number) { number.textContent = String(count + 1); }
      rows.appendChild(row);
      total.value = String(count + 1);
      syncRow(row);
      var label = row.querySelector('input[name$="-label"]');
      if (label) { label.focus(); }
      if (count + 1 >= max) { add.disabled = true; }
    });
  }

  // The offers list: "Publish…" and "Archive…" ask in a dialog (their confirmation page
  // without JavaScript); the dialog's form posts where the link leads.
  function confirmDialogs() {
    var dialog = document.getElementById("confirm-dialog");
    if (!dialog || typeof dialog.showModal !== "function") { return; }
    var form = dialog.querySelector("[data-confirm-form]");
    var submit = dialog.querySelector("[data-confirm-submit]");
    document.querySelectorAll("a[data-confirm]").forEach(function (link) {
      link.addEventListener("click", function (e) {
        e.preventDefault();
        var publish = link.dataset.confirm === "publish";
        dialog.querySelector("[data-confirm-heading]").textContent =
          publish ? "Publish this offer?" : "Archive this offer?";
        dialog.querySelector("[data-confirm-text]").textContent = link.dataset.title || "";
        dialog.querySelector("[data-confirm-then]").hidden = !publish;
        dialog.querySelector("[data-confirm-archive]").hidden = publish;
        submit.textContent = publish ? "Publish" : "Archive";
        submit.classList.toggle("danger", !publish);
        form.action = link.getAttribute("href");
        dialog.showModal();
        submit.focus();
      });
    });
    dialog.querySelector("[data-confirm-cancel]").addEventListener("click", function () {
      dialog.close();
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    var card = document.querySelector("[data-offer-preview]");
    if (card) { livePreview(card); }
    intakeEditor();
    confirmDialogs();
  });
})();
