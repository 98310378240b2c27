// Tag inputs: every <select multiple data-tags="N"> becomes a tom-select where a person
// types a tag and presses Enter (or a comma). The form still posts one value per tag.
document.addEventListener("DOMContentLoaded", () => {
  for (const el of document.querySelectorAll("select[data-tags]")) {
    const max = Number(el.dataset.tags) || null;
    const label = document.querySelector(`label[for="${el.id}"]`);
    const ts = new TomSelect(el, {
      create: (input) => ({ value: input.trim(), text: input.trim() }),
      createFilter: (input) => input.trim().length > 0 && input.trim().length <= 40,
      persist: false,
      createOnBlur: true,  // a typed tag counts even without Enter
      maxItems: max,
      delimiter: ",",
      plugins: ["remove_button"],
      render: { no_results: null, option_create: (data, escape) =>
        `<div class="create">Add <strong>${escape(data.input)}</strong>…</div>` },
    });
    // tom-select points the label at its own text box; the original <select>, kept for the
    // form (hidden, out of the tab order), keeps a name for assistive technology.
    if (label) el.setAttribute("aria-label", label.textContent.replace("*", "").trim());
    ts.control_input.setAttribute("aria-describedby", el.getAttribute("aria-describedby") || "");
  }
});
