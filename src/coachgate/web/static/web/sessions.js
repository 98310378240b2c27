// My sessions: a countdown on the join and no-show notes that are not open yet (the page
// reloads when one opens).
document.addEventListener("DOMContentLoaded", () => {
  for (const el of document.querySelectorAll("[data-opens]")) {
    const opens = new Date(el.dataset.opens);
    const label = el.dataset.label || "opens";
    const tick = () => {
      const left = Math.round((opens - new Date()) / 1000);
      if (left <= 0) { location.reload(); return; }
      if (left < 3600) el.textContent = `${label} in ${Math.floor(left / 60)}:${String(left % 60).padStart(2, "0")}`;
      setTimeout(tick, 1000);
    };
    tick();
  }
});
