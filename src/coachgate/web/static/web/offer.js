// The offer page: when the times are not in this device's zone, offer a link that shows
// them in it (?tz=, kept by the "later times" links).
document.addEventListener("DOMContentLoaded", () => {
  const box = document.querySelector("[data-device-zone]");
  if (!box) return;
  let zone = "";
  try { zone = Intl.DateTimeFormat().resolvedOptions().timeZone || ""; } catch (e) { return; }
  if (!zone || zone === box.dataset.shown) return;
  const url = new URL(location.href);
  url.searchParams.set("tz", zone);
  const link = box.querySelector("a");
  link.href = url.pathname + url.search;
  link.textContent = `Show them in ${zone}`;
  box.hidden = false;
});
