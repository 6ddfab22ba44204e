// The browse page: folders, totals, paging, a file panel and the live change feed, over the
// same-origin /api/* routes of the browse server (which signs the calls to the read API).
// Every bucket, key and prefix is user data: it reaches the page only as text
// (textContent / createTextNode), never as HTML, and only inside "?..." links built with
// URLSearchParams (so no "javascript:" URL can be formed).
'use strict';

import { api, notice } from './calls.js';
import { ago, count, el, human, literal, when } from './view.js';

(() => {
  const PAGE = 200;
  const CHANGES_PAGE = 100;
  const POLL_MS = 2000;
  const BACKLOG_MS = 15 * 60 * 1000;
  const BACKLOG_PAGES = 3; // a page load reads at most this many pages of past changes
  const KEEP_CHANGES = 200;
  const $ = (id) => document.getElementById(id);

  let state = { bucket: '', prefix: '', filter: '', file: '' };
  let buckets = [];
  let generation = 0; // bumps on every navigation: stale answers are dropped
  let folderBytes = 0;
  let nextToken = null;
  let feed = { generation: 0, cursor: null, newest: null, timer: null, backlog: true, pages: 0 };

  // ---------------------------------------------------------------- URL state

  function readLocation() {
    const query = new URLSearchParams(window.location.search);
    state = {
      bucket: query.get('bucket') || '',
      prefix: query.get('prefix') || '',
      filter: query.get('filter') || '',
      file: query.get('file') || '',
    };
  }

  function href(next) {
    const query = new URLSearchParams();
    for (const name of ['bucket', 'prefix', 'filter', 'file']) {
      if (next[name]) query.set(name, next[name]);
    }
    return '?' + query.toString();
  }

  function navigate(changes, replace) {
    state = { ...state, ...changes };
    const target = href(state);
    if (replace) window.history.replaceState(null, '', target);
    else window.history.pushState(null, '', target);
  }

  function folderLink(prefix, label) {
    const link = el('a', 'folder', label);
    link.href = href({ bucket: state.bucket, prefix });
    link.addEventListener('click', (event) => {
      if (event.ctrlKey || event.metaKey || event.shiftKey || event.button !== 0) return;
      event.preventDefault();
      navigate({ prefix, filter: '', file: '' });
      openFolder();
    });
    return link;
  }

  // ---------------------------------------------------------------- buckets

  async function loadBuckets() {
    const answer = await api('buckets');
    const select = $('bucket');
    if (!answer.ok) { notice(answer.body); return false; }
    buckets = answer.body.items || [];
    select.replaceChildren();
    for (const item of buckets) {
      const option = el('option', '', item.bucket);
      option.value = item.bucket;
      select.append(option);
    }
    if (!buckets.length) {
      showEmpty('No bucket is tracked yet. Upload a file to the stack\'s bucket, or adopt a bucket (s3-file-tracker adopt), then reload.');
      return false;
    }
    if (!state.bucket || !buckets.some((b) => b.bucket === state.bucket)) {
      const chosen = buckets.find((b) => b.default) || buckets[0];
      navigate({ bucket: chosen.bucket, prefix: state.bucket ? '' : state.prefix }, true);
    }
    select.value = state.bucket;
    showBucketTotals();
    return true;
  }

  function showBucketTotals() {
    const item = buckets.find((b) => b.bucket === state.bucket);
    $('bucket-totals').textContent = item && typeof item.files === 'number'
      ? `${count(item.files)} files, ${human(item.bytes)}` : '';
  }

  // ---------------------------------------------------------------- the folder

  function crumbs() {
    const nav = $('crumbs');
    nav.replaceChildren(folderLink('', state.bucket));
    let at = 0;
    while (at < state.prefix.length) {
      const slash = state.prefix.indexOf('/', at);
      const end = slash === -1 ? state.prefix.length : slash + 1;
      nav.append(document.createTextNode(' / '));
      nav.append(folderLink(state.prefix.slice(0, end), state.prefix.slice(at, end - (slash === -1 ? 0 : 1))));
      at = end;
    }
  }

  function showEmpty(text) {
    const box = $('empty');
    if (!text) { box.hidden = true; return; }
    box.replaceChildren(literal(text));
    box.hidden = false;
  }

  function renderSummary(answer) {
    const box = $('summary');
    if (answer.ok) {
      folderBytes = answer.body.bytes || 0;
      box.replaceChildren(el('strong', '', `${count(answer.body.files)} files`),
        document.createTextNode(` · ${human(answer.body.bytes)} (${count(answer.body.bytes)} bytes) in this folder`));
      box.dataset.files = answer.body.files;
      box.dataset.bytes = answer.body.bytes;
    } else {
      folderBytes = 0;
      box.replaceChildren(el('span', 'muted', answer.body.message || 'No totals for this folder.'));
      delete box.dataset.files;
      delete box.dataset.bytes;
    }
  }

  function bar(bytes) {
    const outer = el('div', 'bar');
    const inner = document.createElement('div');
    const share = folderBytes > 0 && typeof bytes === 'number' ? Math.min(1, bytes / folderBytes) : 0;
    inner.style.width = `${(share * 100).toFixed(1)}%`; // CSSOM: allowed by style-src 'self'
    outer.append(inner);
    return outer;
  }

  function folderRow(entry) {
    const row = el('tr', 'folder-row');
    row.dataset.prefix = entry.prefix;
    const name = el('td', 'name');
    name.append(folderLink(entry.prefix, entry.prefix.slice(state.prefix.length)));
    row.append(name);
    fillFolderTotals(row, entry);
    return row;
  }

  function fillFolderTotals(row, entry) {
    while (row.children.length > 1) row.lastChild.remove();
    const known = typeof entry.files === 'number';
    const files = el('td', 'num files', known ? count(entry.files) : '');
    const size = el('td', 'num size', known ? human(entry.bytes) : '');
    if (known) {
      row.dataset.files = entry.files;
      row.dataset.bytes = entry.bytes;
      size.title = `${count(entry.bytes)} bytes`;
    }
    const share = el('td', 'bar-col');
    share.append(bar(entry.bytes));
    row.append(files, size, share, el('td'), el('td'), el('td'));
  }

  function fileRow(item) {
    const row = el('tr', 'file');
    row.dataset.key = item.filename;
    const name = el('td', 'name', item.filename.slice(state.prefix.length));
    const size = el('td', 'num size', human(item.size));
    size.title = typeof item.size === 'number' ? `${count(item.size)} bytes` : '';
    const time = el('td', 'time', when(item.event_time));
    time.title = item.event_time || '';
    row.append(name, el('td', 'num'), size, el('td'), time,
      el('td', 'etag', item.etag || ''), el('td', 'version', item.version_id || ''));
    row.addEventListener('click', () => { navigate({ file: item.filename }, true); openFile(item.filename); });
    return row;
  }

  function renderPage(body, first) {
    const folders = $('folders');
    const files = $('files');
    for (const entry of body.common_prefixes || []) folders.append(folderRow(entry));
    for (const item of body.items || []) files.append(fileRow(item));
    nextToken = body.next_token || null;
    $('more').hidden = !nextToken;
    const shown = files.children.length;
    const dirs = folders.children.length;
    const plural = (n, word) => `${count(n)} ${word}${n === 1 ? '' : 's'}`;
    $('page-status').textContent = `${plural(dirs, 'folder')} and ${plural(shown, 'file')} shown` +
      (nextToken ? ' — more below' : '');
    if (first && !shown && !dirs) {
      showEmpty(state.filter
        ? `Nothing in this folder starts with "${state.filter}". Clear the filter to see everything.`
        : `This folder is empty. Upload into it with: aws s3 cp FILE s3://${state.bucket}/${state.prefix}`);
    } else {
      showEmpty('');
    }
  }

  function listingParams() {
    return { bucket: state.bucket, prefix: state.prefix + state.filter, delimiter: '/', limit: PAGE };
  }

  async function openFolder() {
    const mine = ++generation;
    $('filter').value = state.filter;
    $('bucket').value = state.bucket;
    showBucketTotals();
    crumbs();
    $('folders').replaceChildren();
    $('files').replaceChildren();
    $('more').hidden = true;
    $('page-status').textContent = 'Loading…';
    document.body.dataset.loading = 'true';
    const [summary, page] = await Promise.all([
      api('summary', { bucket: state.bucket, prefix: state.prefix }),
      api('files', listingParams()),
    ]);
    if (mine !== generation) return;
    renderSummary(summary);
    if (!page.ok) {
      notice(page.body);
      $('page-status').textContent = '';
    } else {
      notice(null);
      renderPage(page.body, true);
    }
    if (state.file) openFile(state.file); else $('panel').hidden = true;
    document.body.dataset.loading = 'false';
    document.body.dataset.folder = state.prefix;
    performance.mark('folder-painted'); // read by load/browse.py
  }

  async function loadMore() {
    if (!nextToken) return;
    const mine = generation;
    performance.mark('more-start');
    $('more').disabled = true;
    document.body.dataset.loading = 'true';
    const page = await api('files', { ...listingParams(), next_token: nextToken });
    $('more').disabled = false;
    if (mine !== generation) return;
    if (!page.ok) notice(page.body); else renderPage(page.body, false);
    document.body.dataset.loading = 'false';
    performance.measure('load-more', 'more-start'); // read by load/browse.py
  }

  // ---------------------------------------------------------------- the file panel

  async function openFile(key) {
    const bucket = state.bucket;
    const answer = await api('file', { bucket, key });
    if (state.file !== key || state.bucket !== bucket) return;
    for (const row of document.querySelectorAll('tr.file.open')) row.classList.remove('open');
    for (const row of $('files').children) if (row.dataset.key === key) row.classList.add('open');
    const fields = $('panel-fields');
    fields.replaceChildren();
    const add = (label, value) => {
      if (value === undefined || value === null || value === '') return;
      fields.append(el('dt', '', label), el('dd', '', value));
    };
    add('Key', key);
    add('Bucket', bucket);
    if (answer.ok) {
      const file = answer.body;
      add('Size', typeof file.size === 'number' ? `${human(file.size)} (${count(file.size)} bytes)` : '');
      add('Modified', file.event_time);
      add('ETag', file.etag);
      add('Version', file.version_id);
      add('Last event', file.event_name);
    } else {
      add('State', answer.body.message || 'Not found');
    }
    $('panel-uri').replaceChildren(literal(`s3://${bucket}/${key}`));
    $('panel-uri').dataset.uri = `s3://${bucket}/${key}`;
    $('copied').textContent = '';
    $('panel').hidden = false;
  }

  async function copyUri() {
    const uri = $('panel-uri').dataset.uri || '';
    try {
      await navigator.clipboard.writeText(uri);
      $('copied').textContent = ' copied';
    } catch (error) {
      const range = document.createRange();
      range.selectNodeContents($('panel-uri'));
      window.getSelection().removeAllRanges();
      window.getSelection().addRange(range);
      $('copied').textContent = ' selected: press Ctrl+C';
    }
  }

  // ---------------------------------------------------------------- live changes

  function changeItem(change, fresh) {
    const item = el('li', fresh ? 'new' : '');
    item.dataset.key = change.key;
    item.dataset.kind = change.kind;
    item.append(el('span', 'kind', change.kind));
    item.append(literal(change.key));
    if (typeof change.size === 'number') item.append(el('span', 'muted', ` · ${human(change.size)}`));
    if (fresh) item.append(el('span', 'badge', 'new'));
    return item;
  }

  async function refreshTotals(keys) {
    const summary = await api('summary', { bucket: state.bucket, prefix: state.prefix });
    if (summary.ok && summary.body.prefix === state.prefix) renderSummary(summary);
    const rows = [...$('folders').children].filter(
      (row) => keys.some((key) => key.startsWith(row.dataset.prefix))).slice(0, 20);
    for (const row of rows) {
      const answer = await api('summary', { bucket: state.bucket, prefix: row.dataset.prefix });
      if (answer.ok) fillFolderTotals(row, { prefix: row.dataset.prefix, ...answer.body });
    }
    const all = await api('buckets');
    if (all.ok) { buckets = all.body.items || buckets; showBucketTotals(); }
  }

  function showFreshness() {
    const box = $('freshness');
    if (feed.newest) {
      const at = Date.parse(feed.newest);
      box.textContent = Number.isNaN(at) ? '' :
        `Newest change ${ago(Date.now() - at)} ago (${when(feed.newest)}); following live.`;
    } else {
      box.textContent = 'No changes in the last 15 minutes; following live.';
    }
    if (box.dataset.skipped) box.textContent += ' Older changes skipped (a busy bucket).';
  }

  function startFeed() {
    clearTimeout(feed.timer);
    feed = {
      generation: feed.generation + 1, cursor: null, newest: null, timer: null, backlog: true, pages: 0,
    };
    $('changes').replaceChildren();
    pollFeed(feed.generation, new Date(Date.now() - BACKLOG_MS).toISOString());
  }

  async function pollFeed(mine, since) {
    if (mine !== feed.generation) return;
    const answer = await api('changes', {
      bucket: state.bucket, limit: CHANGES_PAGE, cursor: feed.cursor, since: feed.cursor ? '' : since,
    });
    if (mine !== feed.generation) return;
    let delay = POLL_MS;
    if (answer.ok) {
      feed.cursor = answer.body.next_cursor;
      const items = answer.body.items || [];
      const list = $('changes');
      for (const change of items) {
        for (const old of list.querySelectorAll('li')) if (old.dataset.key === change.key) old.remove();
        list.prepend(changeItem(change, !feed.backlog));
        if (change.event_time && (!feed.newest || change.event_time > feed.newest)) feed.newest = change.event_time;
      }
      while (list.children.length > KEEP_CHANGES) list.lastChild.remove();
      const keys = items.map((c) => c.key).filter((key) => key.startsWith(state.prefix));
      if (!feed.backlog && keys.length) refreshTotals(keys);
      feed.pages += 1;
      if (items.length < CHANGES_PAGE) {
        feed.backlog = false;
      } else if (feed.backlog && feed.pages >= BACKLOG_PAGES) {
        // a busy bucket: skip the rest of the past and follow from now
        feed.cursor = null;
        feed.backlog = false;
        since = '';
        $('freshness').dataset.skipped = 'true';
        delay = 0;
      } else {
        delay = 0;
      }
      document.body.dataset.feed = feed.backlog ? 'catching-up' : 'live';
    } else if (answer.body.state === 'expired') {
      feed.cursor = null;
      since = new Date().toISOString();
    } else {
      notice(answer.body);
      delay = POLL_MS * 5;
    }
    showFreshness();
    feed.timer = setTimeout(() => pollFeed(mine, since), delay);
  }

  // ---------------------------------------------------------------- wiring

  let filterTimer = null;
  function onFilter() {
    clearTimeout(filterTimer);
    filterTimer = setTimeout(() => {
      const value = $('filter').value;
      if (value === state.filter) return;
      navigate({ filter: value, file: '' }, true);
      openFolder();
    }, 250);
  }

  async function onPopState() {
    const before = state.bucket;
    readLocation();
    if (!state.bucket) { await loadBuckets(); }
    openFolder();
    if (state.bucket !== before) startFeed();
  }

  async function init() {
    $('more').addEventListener('click', loadMore);
    $('filter').addEventListener('input', onFilter);
    $('copy').addEventListener('click', copyUri);
    $('close-panel').addEventListener('click', () => { navigate({ file: '' }, true); $('panel').hidden = true; });
    $('bucket').addEventListener('change', () => {
      navigate({ bucket: $('bucket').value, prefix: '', filter: '', file: '' });
      openFolder();
      startFeed();
    });
    window.addEventListener('popstate', onPopState);
    setInterval(showFreshness, 1000);
    api('config').then((config) => {
      if (config.ok) $('api').textContent = `reading ${config.body.api}`;
    });
    readLocation();
    if (state.bucket) {
      // a deep link names its bucket: read the folder while the bucket list loads (one round
      // trip less before the first paint)
      const asked = state.bucket;
      openFolder();
      if (!(await loadBuckets())) return;
      if (state.bucket !== asked) openFolder(); // not a tracked bucket: the default instead
    } else {
      if (!(await loadBuckets())) return;
      openFolder();
    }
    startFeed();
  }

  document.addEventListener('DOMContentLoaded', init);
})();
