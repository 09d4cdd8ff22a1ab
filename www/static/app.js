/* usbprintd web page: live status and forms, talking to the JSON API under /api/.
 * Data from the API is only ever inserted as text (never as HTML). */
'use strict';

(function () {
	const POLL_MS = 2000;

	const STATES = {
		serving: ['serving', 'success'],
		absent: ['absent', 'neutral'],
		disabled: ['disabled', 'neutral'],
		'needs-firmware': ['needs firmware', 'warning'],
		'uploading-firmware': ['uploading firmware', 'notice'],
		'paper-out': ['paper out', 'warning'],
		offline: ['offline', 'important'],
		error: ['error', 'important'],
		unknown: ['unknown', 'neutral'],
	};

	const OUTCOMES = {
		queued: ['waiting', 'neutral'],
		printing: ['printing', 'notice'],
		draining: ['finishing', 'notice'],
		done: ['done', 'success'],
		failed: ['failed', 'important'],
		timeout: ['timed out', 'warning'],
		left: ['left the queue', 'neutral'],
		aborted: ['aborted', 'warning'],
	};

	/* --- helpers ------------------------------------------------------------------------ */

	function csrfToken() {
		const meta = document.querySelector('meta[name="csrf-token"]');
		return meta ? meta.content : '';
	}

	async function api(method, path, body, raw) {
		const headers = { Accept: 'application/json' };
		let payload;
		if (method !== 'GET') headers['X-CSRF-Token'] = csrfToken();
		if (raw !== undefined) {
			headers['Content-Type'] = 'application/octet-stream';
			payload = raw;
		} else if (body !== undefined) {
			headers['Content-Type'] = 'application/json';
			payload = JSON.stringify(body);
		}
		let response;
		try {
			response = await fetch(path, { method, headers, body: payload, credentials: 'same-origin', cache: 'no-store' });
		} catch (err) {
			return { ok: false, status: 0, data: { error: 'the router did not answer' } };
		}
		let data = {};
		if (response.status !== 204) {
			try { data = await response.json(); } catch (err) { data = {}; }
		}
		if (response.status === 401 && document.body.dataset.page !== 'login') {
			window.location.href = '/login?next=' + encodeURIComponent(window.location.pathname);
		}
		return { ok: response.ok, status: response.status, data };
	}

	function el(tag, className, ...children) {
		const node = document.createElement(tag);
		if (className) node.className = className;
		for (const child of children) {
			if (child === null || child === undefined || child === '') continue;
			node.append(child instanceof Node ? child : String(child));
		}
		return node;
	}

	function td(...children) { return el('td', 'td', ...children); }

	function badge(pair) { return el('span', 'label ' + pair[1], pair[0]); }

	function stateBadge(state) { return badge(STATES[state] || [state, 'neutral']); }

	function outcomeBadge(outcome, stalled) {
		if (stalled) return badge(['stalled', 'warning']);
		return badge(OUTCOMES[outcome] || [outcome, 'neutral']);
	}

	function bytes(n) {
		if (n < 1024) return n + ' B';
		if (n < 1048576) return (n / 1024).toFixed(1) + ' KiB';
		return (n / 1048576).toFixed(1) + ' MiB';
	}

	function clock(t) { return t ? new Date(t * 1000).toLocaleTimeString() : '–'; }

	function duration(job) {
		if (!job.started_at) return '–';
		const end = job.ended_at || Date.now() / 1000;
		const s = Math.max(0, end - job.started_at);
		return s < 60 ? s.toFixed(1) + ' s' : Math.floor(s / 60) + ' min ' + Math.round(s % 60) + ' s';
	}

	function replaceRows(table, rows, columns, emptyText) {
		const body = table.tBodies[0];
		if (!rows.length) {
			const cell = td(el('em', '', emptyText));
			cell.colSpan = columns;
			const row = el('tr', 'tr placeholder', cell);
			body.replaceChildren(row);
			return;
		}
		body.replaceChildren(...rows);
	}

	function showNotice(text, kind) {
		const notice = document.getElementById('notice');
		if (!notice) return;
		notice.textContent = text;
		notice.className = 'alert-message' + (kind ? ' ' + kind : '');
		notice.hidden = !text;
	}

	function poll(task) {
		let timer = null;
		async function run() {
			clearTimeout(timer);
			try { await task(); } finally { timer = setTimeout(run, POLL_MS); }
		}
		run();
		return run;  // call to refresh now
	}

	/* --- printers ---------------------------------------------------------------------- */

	function usbIdentityText(id, serial, usbPath) {
		return [id || '–', el('span', 'sub', [serial ? 'serial ' + serial : '', usbPath ? 'USB port ' + usbPath : ''].filter(Boolean).join(', '))];
	}

	function usbIdentity(printer) {
		const s = printer.settings;
		const usb = printer.usb || {};
		const id = usb.usb_id || usb.id || s.usb_id;
		const serial = usb.serial || s.serial;
		if (!id && !serial) {
			return [s.device ? 'no USB identity' : '–', s.device ? el('span', 'sub path', s.device) : null];
		}
		return usbIdentityText(id, serial, usb.usb_path || s.usb_path);
	}

	function stateCell(printer) {
		const cell = [stateBadge(printer.state)];
		if (printer.state === 'uploading-firmware' && printer.progress !== null && printer.progress !== undefined) {
			const bar = el('progress');
			bar.max = 1;
			bar.value = printer.progress;
			cell.push(bar, el('span', 'sub', Math.round(printer.progress * 100) + ' %'));
		}
		const why = printer.detail || printer.bind_error || (printer.settings.problems || []).join('; ');
		if (why) cell.push(el('span', 'sub', why));
		return cell;
	}

	function jobText(job) {
		if (!job) return ['–'];
		const parts = [el('span', '', '#' + job.id + ' from ' + job.client)];
		parts.push(el('span', 'sub', bytes(job.bytes_in) + ' at ' + bytes(Math.round(job.rate)) + '/s'));
		if (job.stalled) parts.push(el('span', 'sub', 'printer is not taking data'));
		return parts;
	}

	function countsText(printer) {
		const counts = printer.jobs.counts || {};
		const parts = [];
		for (const key of ['done', 'failed', 'timeout', 'aborted', 'left']) {
			if (counts[key]) parts.push(counts[key] + ' ' + (OUTCOMES[key] || [key])[0]);
		}
		return [parts.length ? parts.join(', ') : 'none yet', el('span', 'sub', bytes(printer.jobs.bytes_total) + ' in total')];
	}

	function printerRow(printer) {
		const s = printer.settings;
		const edit = el('a', 'cbi-button cbi-button-edit', 'Edit');
		edit.href = '/printers/' + encodeURIComponent(printer.section);
		const name = el('a', '', printer.name);
		name.href = edit.href;
		const row = el('tr', 'tr',
			td(el('strong', '', name), el('span', 'sub', printer.model)),
			td(...usbIdentity(printer)),
			td(s.bind ? s.bind + ':' + s.port : String(s.port)),
			td(...stateCell(printer)),
			td(...jobText(printer.active_job)),
			td(String(printer.queue.length)),
			el('td', 'td num', ...countsText(printer)),
			el('td', 'td actions', edit));
		row.dataset.section = printer.section;
		row.dataset.state = printer.state;
		return row;
	}

	function jobsOf(printer) {
		const jobs = [];
		if (printer.active_job) jobs.push(printer.active_job);
		for (const job of printer.queue) jobs.push(job);
		for (const job of printer.jobs.history) jobs.push(job);
		return jobs;
	}

	function jobRow(job, printerName) {
		const cells = [];
		if (printerName !== undefined) cells.push(td(printerName));
		cells.push(td('#' + job.id), td(job.client), td(clock(job.started_at || job.queued_at)),
			td(duration(job)), el('td', 'td num', bytes(job.bytes_in)), el('td', 'td num', bytes(job.bytes_out)),
			td(outcomeBadge(job.outcome, job.stalled), job.error ? el('span', 'sub', job.error) : null));
		const row = el('tr', 'tr', ...cells);
		row.dataset.outcome = job.outcome;
		return row;
	}

	function renderIssues(data) {
		const section = document.getElementById('issues-section');
		if (!section) return;
		const problems = data.issues.filter((issue) => issue.severity === 'error');
		const items = problems.map((issue) => el('li', '', (issue.option ? issue.section + '.' + issue.option : issue.section) + ': ' + issue.message));
		if (data.config_error) items.unshift(el('li', '', data.config_error));
		document.getElementById('issues').replaceChildren(...items);
		section.hidden = !items.length;
	}

	function unservedRow(printer) {
		const row = el('tr', 'tr',
			td(el('strong', '', printer.name), printer.device ? el('span', 'sub path', printer.device) : null),
			td(...usbIdentityText(printer.usb_id, printer.serial, printer.usb_path)),
			td(printer.reason));
		row.dataset.usbId = printer.usb_id;
		return row;
	}

	function renderUnserved(data) {
		const section = document.getElementById('unserved-section');
		if (!section) return;
		const unserved = data.unserved_usb || [];
		document.getElementById('unserved').tBodies[0].replaceChildren(...unserved.map(unservedRow));
		section.hidden = !unserved.length;
	}

	function statusPage() {
		poll(async () => {
			const result = await api('GET', '/api/printers');
			if (!result.ok) return;
			const printers = result.data.printers;
			replaceRows(document.getElementById('printers'), printers.map(printerRow), 8,
				'No printers yet. Plug a USB printer into the router.');
			const jobs = [];
			for (const printer of printers) {
				for (const job of jobsOf(printer)) jobs.push([job, printer.name]);
			}
			jobs.sort((a, b) => (b[0].started_at || b[0].queued_at) - (a[0].started_at || a[0].queued_at));
			replaceRows(document.getElementById('history'), jobs.slice(0, 30).map(([job, name]) => jobRow(job, name)), 8,
				'No jobs since the router started.');
			renderUnserved(result.data);
			renderIssues(result.data);
		});
	}

	/* --- forms ------------------------------------------------------------------------- */

	function changedValues(form) {
		// Only what the owner changed: the log and the UCI file show just that.
		const values = {};
		for (const input of form.querySelectorAll('input[name], select[name]')) {
			if (input.type === 'file' || input.type === 'hidden') continue;
			if (input.type === 'checkbox') {
				if (input.checked !== input.defaultChecked) values[input.name] = input.checked;
			} else if (input.tagName === 'SELECT') {
				const initial = Array.from(input.options).find((o) => o.defaultSelected);
				if (!initial || initial.value !== input.value) values[input.name] = input.value;
			} else if (input.value !== input.defaultValue) {
				values[input.name] = input.value;
			}
		}
		return values;
	}

	function clearErrors(form) {
		for (const box of form.querySelectorAll('[data-error-for]')) {
			box.hidden = true;
			box.textContent = '';
			const row = box.closest('.cbi-value');
			if (row) row.classList.remove('invalid');
		}
	}

	function showErrors(form, fields) {
		let shown = false;
		for (const [name, message] of Object.entries(fields || {})) {
			const box = form.querySelector('[data-error-for="' + CSS.escape(name) + '"]');
			if (!box) continue;
			box.textContent = message;
			box.hidden = false;
			box.closest('.cbi-value').classList.add('invalid');
			shown = true;
		}
		return shown;
	}

	function keepAsDefaults(form) {
		// "Reset" goes back to what is saved now.
		for (const input of form.querySelectorAll('input[name], select[name]')) {
			if (input.type === 'checkbox') input.defaultChecked = input.checked;
			else if (input.tagName === 'SELECT') {
				for (const option of input.options) option.defaultSelected = option.selected;
			} else if (input.type !== 'file') input.defaultValue = input.value;
		}
	}

	function settingsForm(form, path, onSaved) {
		form.addEventListener('reset', () => { clearErrors(form); showNotice(''); });
		form.addEventListener('submit', async (event) => {
			event.preventDefault();
			clearErrors(form);
			const values = changedValues(form);
			if (!Object.keys(values).length) {
				showNotice('Nothing changed.', '');
				return;
			}
			const button = form.querySelector('button[type=submit]');
			button.disabled = true;
			const result = await api('POST', path, values);
			button.disabled = false;
			if (result.ok) {
				keepAsDefaults(form);
				showNotice('Saved and applied.', 'success');
				if (onSaved) onSaved(result.data);
			} else if (result.status === 400 && showErrors(form, result.data.fields)) {
				showNotice('Not saved: please correct the marked settings.', 'error');
			} else {
				showNotice('Not saved: ' + (result.data.error || 'error ' + result.status), 'error');
			}
		});
	}

	/* --- printer page ------------------------------------------------------------------ */

	function show(box, name, ...content) {
		const field = box.querySelector('[data-show="' + name + '"]');
		if (field) field.replaceChildren(...content);
	}

	function printerPage() {
		const box = document.getElementById('printer-status');
		const section = box.dataset.section;
		const path = '/api/printers/' + encodeURIComponent(section);
		const refresh = poll(async () => {
			const result = await api('GET', path);
			if (!result.ok) return;
			const printer = result.data.printer;
			show(box, 'state', ...stateCell(printer));
			show(box, 'model', printer.model || '–');
			show(box, 'usb', ...usbIdentity(printer));
			show(box, 'device', printer.device || 'not plugged in');
			show(box, 'listening', printer.listening.length ? printer.listening.join(', ') : 'nothing (port closed)');
			show(box, 'job', ...jobText(printer.active_job), printer.queue.length ? el('span', 'sub', printer.queue.length + ' waiting') : '');
			show(box, 'counts', ...countsText(printer));
			document.getElementById('forget-section').hidden = printer.present;
			replaceRows(document.getElementById('history'), jobsOf(printer).map((job) => jobRow(job)), 7,
				'No jobs since the router started.');
		});
		settingsForm(document.getElementById('printer-form'), path, (data) => {
			document.getElementById('printer-title').textContent = data.printer.name;
			refresh();
		});
		document.getElementById('forget').addEventListener('click', async () => {
			if (!window.confirm('Forget this printer and its settings?')) return;
			const result = await api('DELETE', path);
			if (result.ok) window.location.href = '/';
			else showNotice('Not removed: ' + (result.data.error || 'error ' + result.status), 'error');
		});
	}

	/* --- firmware page ----------------------------------------------------------------- */

	function firmwarePage() {
		const form = document.getElementById('firmware-upload');
		const input = document.getElementById('firmware-file');
		let maxBytes = Infinity;

		async function refresh() {
			const result = await api('GET', '/api/firmware');
			if (!result.ok) return;
			maxBytes = result.data.max_bytes;
			const rows = result.data.files.map((file) => {
				const remove = el('button', 'cbi-button cbi-button-remove', 'Delete');
				remove.type = 'button';
				remove.addEventListener('click', () => removeFile(file.name));
				const row = el('tr', 'tr', td(el('code', '', file.name)), el('td', 'td num', bytes(file.size)),
					td(new Date(file.modified * 1000).toLocaleString()), el('td', 'td actions', remove));
				row.dataset.file = file.name;
				return row;
			});
			replaceRows(document.getElementById('firmware-files'), rows, 4,
				result.data.problem || 'No firmware files uploaded yet.');
			const models = result.data.models.map((m) => el('tr', 'tr', td(m.model), td(m.usb_id), td(el('code', '', m.file)),
				td(badge(m.present ? ['present', 'success'] : ['missing', 'neutral']))));
			document.getElementById('firmware-models').tBodies[0].replaceChildren(...models);
			document.getElementById('models-section').hidden = !models.length;
		}

		async function removeFile(name) {
			if (!window.confirm('Delete ' + name + '?')) return;
			const result = await api('DELETE', '/api/firmware/' + encodeURIComponent(name));
			if (result.ok) showNotice(name + ' deleted.', 'success');
			else showNotice('Not deleted: ' + (result.data.error || 'error ' + result.status), 'error');
			refresh();
		}

		form.addEventListener('submit', async (event) => {
			event.preventDefault();
			clearErrors(form);
			const file = input.files[0];
			if (!file) { showErrors(form, { file: 'choose a file first' }); return; }
			if (file.size > maxBytes) { showErrors(form, { file: 'the file is larger than ' + bytes(maxBytes) }); return; }
			const button = form.querySelector('button[type=submit]');
			button.disabled = true;
			const result = await api('PUT', '/api/firmware/' + encodeURIComponent(file.name), undefined, file);
			button.disabled = false;
			if (result.ok) {
				showNotice(result.data.file.name + ' uploaded (' + bytes(result.data.file.size) + ').', 'success');
				form.reset();
			} else {
				showErrors(form, { file: result.data.error || 'error ' + result.status });
			}
			refresh();
		});
		refresh();
	}

	/* --- log page ---------------------------------------------------------------------- */

	const LEVELS = { debug: 'neutral', info: 'notice', warning: 'warning', error: 'important', critical: 'important' };

	function logPage() {
		poll(async () => {
			const result = await api('GET', '/api/events?limit=300');
			if (!result.ok) return;
			const rows = result.data.events.slice().reverse().map((event) => el('tr', 'tr',
				el('td', 'td num', new Date(event.time * 1000).toLocaleString()),
				td(badge([event.level, LEVELS[event.level] || 'neutral'])),
				td(event.source), td(event.message)));
			replaceRows(document.getElementById('events'), rows, 4, 'Nothing logged yet.');
		});
	}

	/* --- login and logout -------------------------------------------------------------- */

	function loginPage() {
		const form = document.getElementById('login-form');
		form.addEventListener('submit', async (event) => {
			event.preventDefault();
			const values = Object.fromEntries(new FormData(form).entries());
			const result = await api('POST', '/api/login', values);
			if (result.ok) {
				window.location.href = values.next || '/';
				return;
			}
			const box = document.getElementById('login-error');
			box.textContent = result.data.error || 'login failed (' + result.status + ')';
			box.hidden = false;
			form.querySelector('#password').select();
		});
	}

	function logoutButton() {
		const button = document.getElementById('logout');
		if (!button) return;
		button.addEventListener('click', async () => {
			await api('POST', '/api/logout');
			window.location.href = '/login';
		});
	}

	/* --- start ------------------------------------------------------------------------- */

	const PAGES = {
		status: statusPage,
		printer: printerPage,
		firmware: firmwarePage,
		settings: () => settingsForm(document.getElementById('settings-form'), '/api/settings'),
		log: logPage,
		login: loginPage,
	};

	document.addEventListener('DOMContentLoaded', () => {
		logoutButton();
		const page = document.getElementById('printer-status') ? 'printer' : document.body.dataset.page;
		if (PAGES[page]) PAGES[page]();
	});
}());
