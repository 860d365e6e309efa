// PollingApi dashboard: a client of the public JSON API and nothing more, so it shows only what its key could read
// anyway. No framework and no build step; every text from the API goes into the page as text, never as markup.

const KeyStorageName = 'pollingapi.dashboard.key';
const ApiRoot = new URL('../', window.location.href);
const OverviewRefreshSeconds = 5;
const Statuses = ['pending', 'running', 'succeeded', 'failed', 'cancelled'];

const view = document.getElementById('view');
const notice = document.getElementById('notice');
const signIn = document.getElementById('sign-in');
const forgetKey = document.getElementById('forget-key');

// Incremented on every navigation: a refresh or an answer that belongs to an earlier page is dropped.
let generation = 0;
let refreshTimer = 0;

class ApiError extends Error {
  constructor(status, message, retryAfter) {
    super(message);
    this.status = status;
    this.retryAfter = retryAfter;
  }
}

class SignInRequired extends Error {}

// ---- the page's building blocks -------------------------------------------------------------------------------------

function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === 'class') element.className = value;
    else if (name.startsWith('on')) element.addEventListener(name.slice(2), value);
    else element.setAttribute(name, value === true ? '' : String(value));
  }
  append(element, children);
  return element;
}

function append(element, children) {
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

const svgNamespace = 'http://www.w3.org/2000/svg';
function svg(tag, attributes = {}, ...children) {
  const element = document.createElementNS(svgNamespace, tag);
  for (const [name, value] of Object.entries(attributes)) element.setAttribute(name, String(value));
  append(element, children);
  return element;
}

const localTime = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'medium' });

/** A timestamp in the viewer's time zone, with the UTC instant on hover. */
function time(iso) {
  if (!iso) return h('span', { class: 'muted' }, '—');
  const date = new Date(iso);
  return h('time', { datetime: iso, title: `${iso.replace('T', ' ').replace('Z', '')} UTC` }, localTime.format(date));
}

function seconds(value) {
  if (value === null || value === undefined) return '—';
  if (value < 1) return `${Math.round(value * 1000)} ms`;
  if (value < 60) return `${value.toFixed(value < 10 ? 1 : 0)} s`;
  if (value < 3600) return `${Math.floor(value / 60)} min ${Math.round(value % 60)} s`;
  return `${Math.floor(value / 3600)} h ${Math.round((value % 3600) / 60)} min`;
}

const count = new Intl.NumberFormat();

function statusBadge(status) {
  return h('span', { class: `status status-${status}` }, status);
}

function table(caption, headings, rows, { fixed = false, empty = 'Nothing to show.' } = {}) {
  const head = h('tr', {}, headings.map(([text, numeric]) => h('th', { scope: 'col', class: numeric ? 'num' : undefined }, text)));
  const body = h('tbody', {}, rows.length > 0 ? rows : h('tr', {}, h('td', { colspan: headings.length, class: 'muted' }, empty)));
  return h('div', { class: 'table-wrap' },
    h('table', { class: fixed ? 'fixed' : undefined }, h('caption', { class: 'visually-hidden' }, caption), h('thead', {}, head), body));
}

function say(message, { error = false } = {}) {
  notice.textContent = message ?? '';
  notice.classList.toggle('error', error);
}

function heading(text) {
  const title = h('h1', { tabindex: '-1' }, text);
  document.title = `${text} · PollingApi dashboard`;
  return title;
}

/** Asks the operator to confirm an action in an accessible dialog; resolves true when confirmed. */
function confirmAction(title, text, buttonText, danger = false) {
  const dialog = document.getElementById('confirm');
  document.getElementById('confirm-title').textContent = title;
  document.getElementById('confirm-text').textContent = text;
  const button = document.getElementById('confirm-button');
  button.textContent = buttonText;
  button.classList.toggle('danger', danger);
  dialog.returnValue = '';
  return new Promise(resolve => {
    dialog.addEventListener('close', () => resolve(dialog.returnValue === 'confirm'), { once: true });
    dialog.showModal();
  });
}

// ---- the API ------------------------------------------------------------------------------------------------------

function retryAfterSeconds(response) {
  const value = Number.parseInt(response.headers.get('Retry-After') ?? '', 10);
  return Number.isFinite(value) && value > 0 ? value : undefined;
}

async function call(path, { method = 'GET', body } = {}) {
  const headers = { Accept: 'application/json' };
  const key = sessionStorage.getItem(KeyStorageName);
  if (key) headers['X-Api-Key'] = key;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  let response;
  try {
    response = await fetch(new URL(path, ApiRoot), {
      method, headers, body: body === undefined ? undefined : JSON.stringify(body), cache: 'no-store', credentials: 'omit',
    });
  } catch {
    throw new ApiError(0, 'The API cannot be reached.', undefined);
  }
  const text = await response.text();
  let json = null;
  try {
    json = text ? JSON.parse(text) : null;
  } catch {
    json = null;
  }
  if (response.status === 401) {
    showSignIn(key ? 'This key was not accepted (unknown or revoked).' : 'The API asks for a key.');
    throw new SignInRequired();
  }
  if (response.status === 403) {
    showSignIn('This key is refused: the dashboard needs a key with the admin scope.');
    throw new SignInRequired();
  }
  if (!response.ok) {
    const message = json?.detail || json?.title || `The API answered ${response.status}.`;
    throw new ApiError(response.status, message, retryAfterSeconds(response));
  }
  return { status: response.status, body: json, retryAfter: retryAfterSeconds(response) };
}

function query(parameters) {
  const search = new URLSearchParams();
  for (const [name, value] of Object.entries(parameters)) {
    if (value !== undefined && value !== null && value !== '') search.set(name, value);
  }
  const text = search.toString();
  return text ? `?${text}` : '';
}

// ---- signing in -------------------------------------------------------------------------------------------------------

function showSignIn(reason) {
  document.getElementById('sign-in-reason').textContent = reason;
  signIn.hidden = false;
  view.hidden = true;
  forgetKey.hidden = !sessionStorage.getItem(KeyStorageName);
  say('');
  document.getElementById('api-key').focus();
}

document.getElementById('key-form').addEventListener('submit', event => {
  event.preventDefault();
  const input = document.getElementById('api-key');
  const key = input.value.trim();
  if (!key) return;
  sessionStorage.setItem(KeyStorageName, key);
  input.value = '';
  render();
});

forgetKey.addEventListener('click', () => {
  sessionStorage.removeItem(KeyStorageName);
  forgetKey.hidden = true;
  render();
});

// ---- pages ------------------------------------------------------------------------------------------------------------

async function overviewPage(_, page) {
  // The first figures come before anything is drawn, so the page appears once, whole, and a refused key shows nothing.
  const first = (await call('v1/admin/stats')).body;
  const updated = h('span', {}, time(first.generatedAt));
  const chartHolder = h('div', { class: 'chart-holder' }, throughputChart(first.throughput ?? []));
  const queueHolder = h('div', {}, queueTable(first.kinds));
  page.append(
    heading('Overview'),
    h('p', { class: 'muted' }, 'Cluster-wide, refreshed every few seconds. Updated ', updated, '.'),
    h('section', { 'aria-labelledby': 'throughput-title' },
      h('h2', { id: 'throughput-title' }, 'Completions, last 5 minutes'),
      chartHolder,
      h('ul', { class: 'legend' },
        h('li', {}, h('span', { class: 'swatch succeeded', 'aria-hidden': 'true' }), 'succeeded'),
        h('li', {}, h('span', { class: 'swatch failed', 'aria-hidden': 'true' }), 'failed'))),
    h('section', { 'aria-labelledby': 'queues-title' }, h('h2', { id: 'queues-title' }, 'Kinds'), queueHolder));

  const mine = generation;
  const refresh = async () => {
    let delay = OverviewRefreshSeconds;
    try {
      const stats = (await call('v1/admin/stats')).body;
      if (mine !== generation) return;
      updated.replaceChildren(time(stats.generatedAt));
      chartHolder.replaceChildren(throughputChart(stats.throughput ?? []));
      queueHolder.replaceChildren(queueTable(stats.kinds));
      say('');
    } catch (error) {
      if (error instanceof SignInRequired || mine !== generation) return;
      say(`Could not refresh: ${error.message}`, { error: true });
      delay = Math.max(delay, error.retryAfter ?? 0);
    }
    if (mine === generation) refreshTimer = window.setTimeout(refresh, delay * 1000);
  };
  refreshTimer = window.setTimeout(refresh, OverviewRefreshSeconds * 1000);
}

function queueTable(kinds) {
  const rows = kinds.map(kind => h('tr', { 'data-kind': kind.kind },
    h('th', { scope: 'row' }, h('a', { href: `#/operations${query({ kind: kind.kind })}` }, kind.kind)),
    h('td', { class: 'num' }, count.format(kind.pending)),
    h('td', { class: 'num' }, count.format(kind.running)),
    h('td', { class: 'num' }, count.format(kind.scheduledRetries)),
    h('td', { class: 'num' }, count.format(kind.succeeded)),
    h('td', { class: 'num' }, kind.failed > 0
      ? h('a', { href: `#/failed${query({ kind: kind.kind })}` }, count.format(kind.failed))
      : count.format(kind.failed)),
    h('td', { class: 'num' }, kind.oldestPendingAgeSeconds > 0 ? seconds(kind.oldestPendingAgeSeconds) : '—'),
    h('td', { class: 'num' }, seconds(kind.runTimeP50Seconds)),
    h('td', { class: 'num' }, seconds(kind.runTimeP95Seconds))));
  return table('Per kind: the queue now and what finished in the last 5 minutes', [
    ['Kind'], ['Pending', true], ['Running', true], ['Retries waiting', true], ['Succeeded (5 min)', true],
    ['Failed (5 min)', true], ['Oldest pending', true], ['Run time p50', true], ['p95', true],
  ], rows, { fixed: true, empty: 'No kinds yet.' });
}

/** Completions per interval as stacked bars: a fixed-size picture, so a refresh never moves the page. */
function throughputChart(buckets) {
  const width = 600;
  const height = 120;
  const largest = Math.max(1, ...buckets.map(b => b.succeeded + b.failed));
  const slot = width / Math.max(buckets.length, 1);
  const scale = (height - 4) / largest;
  const total = buckets.reduce((sum, b) => sum + b.succeeded + b.failed, 0);
  const description = buckets.length === 0
    ? 'No completions yet.'
    : `${count.format(total)} completions in the last 5 minutes; at most ${count.format(largest)} in one ${buckets[0].seconds}-second interval.`;
  // The bars stretch with the width; the labels are text beside the picture, so they do not.
  const chart = svg('svg', { class: 'chart', viewBox: `0 0 ${width} ${height}`, role: 'img', 'aria-label': description, preserveAspectRatio: 'none' },
    svg('title', {}, description),
    svg('line', { class: 'axis', x1: 0, x2: width, y1: height - 0.5, y2: height - 0.5 }));
  buckets.forEach((bucket, index) => {
    const x = index * slot + 3;
    const barWidth = Math.max(slot - 6, 1);
    const succeededHeight = bucket.succeeded * scale;
    const failedHeight = bucket.failed * scale;
    const label = `${localTime.format(new Date(bucket.start))}: ${bucket.succeeded} succeeded, ${bucket.failed} failed`;
    chart.append(
      svg('rect', { class: 'succeeded', x, width: barWidth, y: height - succeededHeight, height: succeededHeight }, svg('title', {}, label)),
      svg('rect', { class: 'failed', x, width: barWidth, y: height - succeededHeight - failedHeight, height: failedHeight }, svg('title', {}, label)));
  });
  return h('figure', { class: 'chart-figure' },
    h('div', { class: 'chart-scale', 'aria-hidden': 'true' }, `${count.format(largest)} per ${buckets[0]?.seconds ?? 30} s`),
    chart,
    h('div', { class: 'chart-axis', 'aria-hidden': 'true' }, h('span', {}, '5 min ago'), h('span', {}, 'now')));
}

async function operationsPage(parameters, page) {
  const filters = {
    status: parameters.get('status') ?? '',
    kind: parameters.get('kind') ?? '',
    tenant: parameters.get('tenant') ?? '',
    createdAfter: parameters.get('createdAfter') ?? '',
    createdBefore: parameters.get('createdBefore') ?? '',
    limit: parameters.get('limit') ?? '25',
  };
  const cursor = parameters.get('cursor') ?? '';
  page.append(heading('Operations'), filterForm(filters, await knownKinds()));
  const result = (await call(`v1/operations${query({ ...filters, cursor })}`)).body;
  page.append(table('Operations, newest first', [['Id'], ['Kind'], ['Status'], ['Tenant'], ['Created'], ['Updated'], ['Attempts', true]],
    result.items.map(operation => h('tr', { 'data-id': operation.id },
      h('td', {}, h('a', { class: 'mono', href: `#/operations/${operation.id}` }, operation.id)),
      h('td', {}, operation.kind),
      h('td', {}, statusBadge(operation.status)),
      h('td', {}, operation.tenant ?? ''),
      h('td', {}, time(operation.createdAt)),
      h('td', {}, time(operation.updatedAt)),
      h('td', { class: 'num' }, `${operation.attempts} / ${operation.maxAttempts}`))),
    { empty: 'No operation matches these filters.' }));
  page.append(h('nav', { class: 'pager', 'aria-label': 'Pages' },
    cursor ? h('a', { href: `#/operations${query(filters)}` }, '« Newest') : null,
    result.nextCursor ? h('a', { href: `#/operations${query({ ...filters, cursor: result.nextCursor })}`, rel: 'next' }, 'Older »') : null));
}

let kindsCache;
async function knownKinds() {
  if (!kindsCache) kindsCache = (await call('v1/admin/stats')).body.kinds.map(k => k.kind);
  return kindsCache;
}

function toLocalInput(iso) {
  if (!iso) return '';
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return '';
  const offset = date.getTimezoneOffset() * 60000;
  return new Date(date.getTime() - offset).toISOString().slice(0, 16);
}

function fromLocalInput(value) {
  return value ? new Date(value).toISOString() : '';
}

function filterForm(filters, kinds) {
  const select = (name, label, options) => h('label', {}, label, h('select', { name },
    h('option', { value: '' }, 'any'),
    options.map(option => h('option', { value: option, selected: option === filters[name] }, option))));
  const form = h('form', { class: 'filters panel', role: 'search', 'aria-label': 'Filter operations' },
    select('status', 'Status', Statuses),
    select('kind', 'Kind', kinds.includes(filters.kind) || !filters.kind ? kinds : [...kinds, filters.kind]),
    h('label', {}, 'Tenant', h('input', { name: 'tenant', value: filters.tenant, maxlength: 64, size: 12, spellcheck: 'false' })),
    h('label', {}, 'Created after', h('input', { name: 'createdAfter', type: 'datetime-local', value: toLocalInput(filters.createdAfter) })),
    h('label', {}, 'Created before', h('input', { name: 'createdBefore', type: 'datetime-local', value: toLocalInput(filters.createdBefore) })),
    h('label', {}, 'Per page', h('select', { name: 'limit' },
      ['25', '50', '100'].map(size => h('option', { value: size, selected: size === filters.limit }, size)))),
    h('button', { type: 'submit' }, 'Apply'));
  form.addEventListener('submit', event => {
    event.preventDefault();
    const data = new FormData(form);
    window.location.hash = `#/operations${query({
      status: data.get('status'), kind: data.get('kind'), tenant: String(data.get('tenant') ?? '').trim(),
      createdAfter: fromLocalInput(data.get('createdAfter')), createdBefore: fromLocalInput(data.get('createdBefore')),
      limit: data.get('limit') === '25' ? '' : data.get('limit'),
    })}`;
  });
  return form;
}

async function operationPage(parameters, page, id) {
  const mine = generation;
  const holder = h('div');
  page.append(heading(`Operation ${id}`), holder);

  const load = async () => {
    // The attempts after the operation, never alongside: a done operation's attempts, read after it, show its last
    // attempt ended; read at the same time they could still show it running, and a done page is not reloaded.
    const answer = await call(`v1/operations/${id}`);
    const attempts = await call(`v1/operations/${id}/attempts`);
    if (mine !== generation) return;
    holder.replaceChildren(...operationDetail(answer.body, attempts.body.items, load));
    if (!answer.body.done) {
      // Not done: look again when the API says to (its Retry-After), as any client of the status monitor does.
      refreshTimer = window.setTimeout(() => load().catch(failed), (answer.retryAfter ?? 1) * 1000);
    }
  };
  const failed = error => {
    if (!(error instanceof SignInRequired) && mine === generation) say(error.message, { error: true });
  };
  try {
    await load();
  } catch (error) {
    if (error instanceof ApiError && error.status === 404) {
      holder.replaceChildren(h('p', {}, 'No operation has this id (it may have been deleted).'));
      return;
    }
    throw error;
  }
}

function operationDetail(operation, attempts, reload) {
  const act = async (verb, title, text, button, request, done) => {
    if (!await confirmAction(title, text, button, verb === 'delete')) return;
    try {
      await request();
      window.clearTimeout(refreshTimer);
      say(done);
      if (verb === 'delete') window.location.hash = '#/operations';
      else await reload();
    } catch (error) {
      if (!(error instanceof SignInRequired)) say(`${title} failed: ${error.message}`, { error: true });
    }
  };
  const actions = h('div', { class: 'actions' },
    operation.links.cancel ? h('button', {
      type: 'button', class: 'danger', onclick: () => act('cancel', 'Cancel this operation?',
        operation.status === 'running' ? 'Its handler is asked to stop; it ends cancelled when it does.' : 'It will not run.',
        'Cancel operation', () => call(`v1/operations/${operation.id}/cancel`, { method: 'POST' }), 'Cancellation requested.'),
    }, 'Cancel') : null,
    operation.links.retry ? h('button', {
      type: 'button', onclick: () => act('retry', 'Retry this operation?', 'It goes back to pending with fresh attempts.',
        'Retry operation', () => call(`v1/operations/${operation.id}/retry`, { method: 'POST' }), 'Retried: the operation is pending again.'),
    }, 'Retry') : null,
    operation.done ? h('button', {
      type: 'button', class: 'quiet', onclick: () => act('delete', 'Delete this operation?', 'Its status monitor answers 404 afterwards.',
        'Delete operation', () => call(`v1/operations/${operation.id}`, { method: 'DELETE' }), 'Deleted.'),
    }, 'Delete') : null);

  const field = (name, ...value) => [h('dt', {}, name), h('dd', {}, ...value)];
  const progress = operation.progress
    ? [h('progress', { max: 100, value: operation.progress.percent }, `${operation.progress.percent}%`), ` ${operation.progress.percent}% `,
      operation.progress.message ?? '']
    : ['—'];
  const parts = [
    actions,
    h('dl', { class: 'fields panel' },
      field('Status', statusBadge(operation.status), operation.cancelRequested && !operation.done ? ' (cancellation requested)' : ''),
      field('Kind', operation.kind),
      field('Tenant', operation.tenant ?? '—'),
      field('Created', time(operation.createdAt)),
      field('Updated', time(operation.updatedAt)),
      field('Completed', time(operation.completedAt)),
      field('Attempts', `${operation.attempts} of ${operation.maxAttempts}`),
      field('Next attempt', time(operation.nextAttemptAt)),
      field('Progress', ...progress)),
  ];
  if (operation.result !== null && operation.result !== undefined) {
    parts.push(h('h2', {}, 'Result'), h('pre', {}, JSON.stringify(operation.result, null, 2)));
  }
  if (operation.error) {
    parts.push(h('h2', {}, 'Error'), problemFields(operation.error));
  }
  parts.push(h('h2', { id: 'attempts-title' }, 'Attempts'), table('Attempts, oldest first',
    [['#', true], ['Outcome'], ['Started'], ['Ended'], ['Took', true], ['Node'], ['Trace id'], ['Error']],
    attempts.map(attempt => h('tr', {},
      h('td', { class: 'num' }, attempt.attempt),
      h('td', {}, attempt.outcome),
      h('td', {}, time(attempt.startedAt)),
      h('td', {}, time(attempt.endedAt)),
      h('td', { class: 'num' }, attempt.startedAt && attempt.endedAt
        ? seconds((new Date(attempt.endedAt) - new Date(attempt.startedAt)) / 1000) : '—'),
      h('td', {}, attempt.node ?? '—'),
      h('td', { class: 'mono' }, attempt.traceId ?? '—'),
      h('td', { class: 'wrap' }, attempt.error ? [attempt.error.title, ' ', h('code', {}, attempt.error.type)] : ''))),
    { empty: 'No attempt has started yet.' }));
  return parts;
}

function problemFields(problem) {
  return h('dl', { class: 'fields panel' },
    h('dt', {}, 'Type'), h('dd', { class: 'mono' }, problem.type),
    h('dt', {}, 'Title'), h('dd', {}, problem.title),
    h('dt', {}, 'Detail'), h('dd', {}, problem.detail ?? '—'));
}

async function failedPage(parameters, page) {
  const filters = { kind: parameters.get('kind') ?? '', tenant: parameters.get('tenant') ?? '' };
  const kinds = await knownKinds();
  const form = h('form', { class: 'filters panel', role: 'search', 'aria-label': 'Filter failed operations' },
    h('label', {}, 'Kind', h('select', { name: 'kind' }, h('option', { value: '' }, 'any'),
      kinds.map(kind => h('option', { value: kind, selected: kind === filters.kind }, kind)))),
    h('label', {}, 'Tenant', h('input', { name: 'tenant', value: filters.tenant, maxlength: 64, size: 12, spellcheck: 'false' })),
    h('button', { type: 'submit' }, 'Apply'));
  form.addEventListener('submit', event => {
    event.preventDefault();
    const data = new FormData(form);
    window.location.hash = `#/failed${query({ kind: data.get('kind'), tenant: String(data.get('tenant') ?? '').trim() })}`;
  });
  page.append(heading('Failed operations'), form);

  const [groups, latest] = await Promise.all([
    call(`v1/admin/failures${query(filters)}`),
    call(`v1/operations${query({ ...filters, status: 'failed', limit: 25 })}`),
  ]);
  page.append(h('h2', {}, 'By kind and error'), table('Failed operations grouped by kind and error type',
    [['Kind'], ['Error type'], ['Title'], ['Count', true], ['Last failed'], ['']],
    groups.body.groups.map(group => h('tr', { 'data-kind': group.kind, 'data-error-type': group.errorType },
      h('td', {}, group.kind),
      h('td', { class: 'mono wrap' }, group.errorType),
      h('td', { class: 'wrap' }, group.title),
      h('td', { class: 'num' }, count.format(group.count)),
      h('td', {}, time(group.lastFailedAt)),
      h('td', {}, h('button', {
        type: 'button',
        onclick: () => retryGroup(group, filters.tenant),
      }, `Retry all ${count.format(group.count)}`)))),
    { empty: 'No failed operations.' }));

  page.append(h('h2', {}, 'Latest failures'), table('The latest failed operations', [['Id'], ['Kind'], ['Error'], ['Failed'], ['']],
    latest.body.items.map(operation => h('tr', { 'data-id': operation.id },
      h('td', {}, h('a', { class: 'mono', href: `#/operations/${operation.id}` }, operation.id)),
      h('td', {}, operation.kind),
      h('td', { class: 'wrap' }, operation.error ? operation.error.title : ''),
      h('td', {}, time(operation.completedAt)),
      h('td', {}, operation.links.retry ? h('button', {
        type: 'button', class: 'quiet', onclick: () => retryOne(operation),
      }, 'Retry') : null))),
    { empty: 'No failed operations.' }));
}

async function retryGroup(group, tenant) {
  if (!await confirmAction('Retry every operation in this group?',
    `${count.format(group.count)} failed ${group.kind} operation(s) with error ${group.errorType} go back to pending with fresh attempts.`,
    'Retry all')) return;
  let retried = 0;
  let refused = 0;
  try {
    // The API retries a bounded batch per request and says whether more match.
    for (let round = 0; round < 100; round++) {
      const answer = (await call('v1/admin/failures/retry', {
        method: 'POST', body: { kind: group.kind, errorType: group.errorType, tenant: tenant || null },
      })).body;
      retried += answer.retried;
      refused += answer.refused;
      if (!answer.more) break;
    }
    say(`Retried ${count.format(retried)} operation(s)${refused ? `; ${count.format(refused)} refused by their command's replay rule` : ''}.`);
    render({ keepNotice: true });
  } catch (error) {
    if (!(error instanceof SignInRequired)) say(`Retry failed after ${retried}: ${error.message}`, { error: true });
  }
}

async function retryOne(operation) {
  if (!await confirmAction('Retry this operation?', `${operation.kind} ${operation.id} goes back to pending with fresh attempts.`, 'Retry operation')) return;
  try {
    await call(`v1/operations/${operation.id}/retry`, { method: 'POST' });
    say(`Retried ${operation.id}.`);
    render({ keepNotice: true });
  } catch (error) {
    if (!(error instanceof SignInRequired)) say(`Retry failed: ${error.message}`, { error: true });
  }
}

async function consistencyPage(_, page) {
  page.append(heading('Consistency'),
    h('p', { class: 'muted' }, 'Runs every check now: operations running past their lease, operations pending too long, and the checks commands add.'));
  const report = (await call('v1/admin/consistency')).body;
  page.append(h('p', {}, 'Checked ', time(report.checkedAt), '. ',
    h('button', { type: 'button', class: 'quiet', onclick: () => render() }, 'Check again')));
  if (report.findings.length === 0) {
    page.append(h('p', { class: 'panel', id: 'no-findings' }, 'No findings: everything checked is consistent.'));
    return;
  }
  for (const finding of report.findings) {
    page.append(h('article', { class: 'panel finding', 'data-check': finding.check },
      h('h2', {}, finding.check),
      h('p', {}, finding.description),
      h('p', {}, h('strong', {}, 'What to do: '), finding.action),
      h('details', {}, h('summary', {}, `${finding.ids.length} id(s)`),
        h('ul', {}, finding.ids.map(id => h('li', {}, h('a', { class: 'mono', href: `#/operations/${id}` }, id)))))));
  }
}

// ---- navigation ---------------------------------------------------------------------------------------------------

const routes = [
  [/^\/operations\/([0-9a-fA-F-]{36})$/, 'operations', operationPage],
  [/^\/operations$/, 'operations', operationsPage],
  [/^\/failed$/, 'failed', failedPage],
  [/^\/consistency$/, 'consistency', consistencyPage],
  [/^\/(overview)?$/, 'overview', overviewPage],
];

async function render({ keepNotice = false } = {}) {
  generation += 1;
  window.clearTimeout(refreshTimer);
  if (!keepNotice) say('');
  const [path, search] = (window.location.hash.replace(/^#/, '') || '/overview').split('?');
  const route = routes.find(([pattern]) => pattern.test(path)) ?? routes[routes.length - 1];
  const [pattern, name, show] = route;
  for (const link of document.querySelectorAll('nav a[data-page]')) {
    if (link.dataset.page === name) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
  }
  signIn.hidden = true;
  view.hidden = false;
  forgetKey.hidden = !sessionStorage.getItem(KeyStorageName);
  const page = h('div', { 'aria-busy': 'true' });
  view.replaceChildren(page);
  const mine = generation;
  try {
    await show(new URLSearchParams(search ?? ''), page, ...(pattern.exec(path)?.slice(1) ?? []));
  } catch (error) {
    if (error instanceof SignInRequired || mine !== generation) return;
    say(error.message, { error: true });
  } finally {
    page.removeAttribute('aria-busy');
  }
}

window.addEventListener('hashchange', () => {
  render().then(() => view.querySelector('h1')?.focus({ preventScroll: true }));
});
render();
