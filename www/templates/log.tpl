% rebase('layout.tpl')
<h2 name="content">Log</h2>
<div class="cbi-map-descr">Recent events of the print server, newest first (kept in memory only; the full log is in
<code>logread</code>).</div>
<div class="cbi-section">
  <table class="table" id="events">
    <thead><tr class="tr table-titles"><th class="th">Time</th><th class="th">Level</th><th class="th">Source</th><th class="th">Message</th></tr></thead>
    <tbody><tr class="tr placeholder"><td class="td" colspan="4"><em>Collecting data…</em></td></tr></tbody>
  </table>
</div>
