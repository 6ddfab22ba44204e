"""The change feed (docs/api.md, "Change feed"): positions the writers stamp on rows, signed
cursors, and the reader that pages through the `by_change` index behind a settle window.

- `positions`: the position format, shards, kinds and the writer's stamping rule (`Stamper`).
- `cursors`: opaque cursors (page tokens of their own key, bound to bucket and prefix).
- `reader`: one page: settle bound, merge of the shards, `next_cursor` (port: `ChangeIndex`).
- `service`: `GET /changes` without HTTP: first cursors, retention, the items' shape.
"""
