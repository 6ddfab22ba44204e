// The browse page's calls: same-origin /api/* routes of the browse server (which signs them
// for the read API), and the plain-worded states an answer can put on the page.
'use strict';

import { literal } from './view.js';

export async function api(route, params) {
  const query = new URLSearchParams();
  for (const [name, value] of Object.entries(params || {})) {
    if (value !== undefined && value !== null && value !== '') query.set(name, value);
  }
  const url = `/api/${route}` + (query.toString() ? `?${query}` : '');
  let response;
  try {
    response = await fetch(url, { credentials: 'same-origin', cache: 'no-store' });
  } catch (error) {
    return { ok: false, status: 0, body: { state: 'server' } };
  }
  let body = {};
  try {
    body = await response.json();
  } catch (error) {
    body = { state: response.status === 403 ? 'session' : 'upstream_error' };
  }
  return { ok: response.ok, status: response.status, body };
}

const STATES = {
  credentials: ['AWS credentials refused or missing.',
    'Refresh the credentials where browse runs (aws sso login, aws configure), then reload this page.'],
  unreachable: ['The API cannot be reached.',
    'Check that the stack is running (make up) and reload this page.'],
  bad_request: ['The API did not accept the request.',
    'Change the filter or go back to a folder above.'],
  not_found: ['Not found.', 'The bucket or file may no longer be tracked; pick another bucket.'],
  expired: ['The change feed position expired.', 'Following again from now.'],
  upstream_error: ['The API had a problem.', 'Try again in a moment (reload the page).'],
  session: ['This page has no session.',
    'Open the URL that make up or s3-file-tracker browse printed (it carries the token).'],
  server: ['The browse server is not answering.',
    'It stopped? Run make up (or s3-file-tracker browse) again and open the URL it prints.'],
};

export function notice(body) {
  const box = document.getElementById('notice');
  if (!body) { box.hidden = true; return; }
  const [title, hint] = STATES[body.state] || STATES.upstream_error;
  document.getElementById('notice-title').textContent = title;
  document.getElementById('notice-text').replaceChildren(literal(body.message || ''));
  document.getElementById('notice-hint').textContent = hint;
  box.hidden = false;
}
