// The drawn week: drag a range up or down (15-minute steps) or to another day to move it.
// On release the range's own form below is filled in and submitted, so the server checks
// the move like any edit (an overlap is refused with a message, nothing changes). A click
// without a drag follows the block's link to that form.
(() => {
  const STEP = 15;
  const fmt = (m) => `${String(Math.floor(m / 60)).padStart(2, "0")}:${String(m % 60).padStart(2, "0")}`;

  function drag(ev, block, week) {
    if (ev.button !== 0) return;
    ev.preventDefault();
    const first = Number(week.dataset.first) * 60;
    const span = Number(week.dataset.hours) * 60;
    const cols = [...week.querySelectorAll(".week-day .week-col")];
    const height = block.parentElement.getBoundingClientRect().height;
    const start = Number(block.dataset.start), end = Number(block.dataset.end);
    const home = Number(block.dataset.weekday);
    const y0 = ev.clientY;
    let delta = 0, day = home, moved = false;
    block.setPointerCapture(ev.pointerId);
    block.classList.add("dragging");
    const move = (e) => {
      delta = Math.round((e.clientY - y0) / height * span / STEP) * STEP;
      delta = Math.max(first - start, Math.min(Math.min(first + span, 1439) - end, delta));
      const over = cols.findIndex((c) => {
        const r = c.getBoundingClientRect();
        return e.clientX >= r.left && e.clientX <= r.right;
      });
      if (over >= 0) day = over;
      moved = moved || Math.abs(e.clientY - y0) > 4 || day !== home;
      block.style.top = `${(start + delta - first) / span * 100}%`;
      if (cols[day] !== block.parentElement) cols[day].appendChild(block);
      block.textContent = `${fmt(start + delta)}–${fmt(end + delta)}`;
    };
    const up = () => {
      block.removeEventListener("pointermove", move);
      block.removeEventListener("pointerup", up);
      block.classList.remove("dragging");
      if (!moved || (delta === 0 && day === home)) return;
      block.dataset.dragged = "1";
      const form = document.getElementById(`range-${block.dataset.range}`);
      form.querySelector("[name=weekday]").value = String(day);
      form.querySelector("[name=start]").value = fmt(start + delta);
      form.querySelector("[name=end]").value = fmt(end + delta);
      form.requestSubmit(form.querySelector("button:not([formaction])"));
    };
    block.addEventListener("pointermove", move);
    block.addEventListener("pointerup", up);
  }

  function setup() {
    const week = document.querySelector(".week[data-first]");
    if (!week) return;
    for (const block of week.querySelectorAll(".week-block[data-range]")) {
      if (block.dataset.ready) continue;
      block.dataset.ready = "1";
      block.addEventListener("pointerdown", (ev) => drag(ev, block, week));
      block.addEventListener("click", (ev) => { if (block.dataset.dragged) ev.preventDefault(); });
    }
  }
  document.addEventListener("DOMContentLoaded", setup);
  document.addEventListener("htmx:afterSettle", setup);
})();
