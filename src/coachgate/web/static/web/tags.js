// Tag inputs: every <select multiple data-tags="N"> becomes a tom-select where a person
// types a tag and presses Enter (or a comma). The form still posts one value per tag.
document.addEventListener("DOMContentLoaded", () => {
  for (const el of document.querySelectorAll("select[data-tags]")) {
    const max = Number(el.dataset.tags) || null;
    new TomSelect(el, {
      create: (input) => ({ value: input.trim(), text: input.trim() }),
      createFilter: (input) => input.trim().length > 0 && input.trim().length <= 40,
      persist: false,
      maxItems: max,
      delimiter: ",",
      plugins: ["remove_button"],
      render: { no_results: null, option_create: (data, escape) =>
        `<div class="create">Add <strong>${escape(data.input)}</strong>…</div>` },
    });
  }
});
