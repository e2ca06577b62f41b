// Every console table sorts by any column: a button in each header cell sorts the rows by that
// column (numbers as numbers, the first number in a cell such as "0.31 [0.28, 0.34]"; text by
// the browser's collation), a second press reverses, and aria-sort says which way. Rows that
// span the table (a "not compared" note) stay at the bottom. No library: forty lines do it.
(function () {
  "use strict";

  function key(cell) {
    const text = (cell ? cell.textContent : "").trim();
    const number = text.replace(/,/g, "").match(/^[-+]?\d*\.?\d+(e[-+]?\d+)?/i);
    return number ? { number: parseFloat(number[0]), text: text } : { number: null, text: text };
  }

  function compare(a, b) {
    if (a.number !== null && b.number !== null) return a.number - b.number;
    if (a.number !== null) return -1;
    if (b.number !== null) return 1;
    return a.text.localeCompare(b.text, undefined, { numeric: true, sensitivity: "base" });
  }

  function sortable(table) {
    const head = table.tHead;
    const body = table.tBodies[0];
    if (!head || !body || !head.rows.length) return;
    const headers = Array.from(head.rows[0].cells);
    headers.forEach(function (th, column) {
      if (!th.textContent.trim()) return;
      const button = document.createElement("button");
      button.type = "button";
      button.className = "console-sort";
      while (th.firstChild) button.appendChild(th.firstChild);
      th.appendChild(button);
      button.addEventListener("click", function () {
        const ascending = th.getAttribute("aria-sort") !== "ascending";
        headers.forEach(function (other) { other.removeAttribute("aria-sort"); });
        th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
        const rows = Array.from(body.rows);
        const full = rows.filter(function (row) { return row.cells.length === headers.length; });
        const rest = rows.filter(function (row) { return row.cells.length !== headers.length; });
        full.sort(function (a, b) {
          const order = compare(key(a.cells[column]), key(b.cells[column]));
          return ascending ? order : -order;
        });
        full.concat(rest).forEach(function (row) { body.appendChild(row); });
      });
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("table.console-table").forEach(sortable);
  });
})();
