/**
 * Shared styles of the web app's elements: colour and spacing tokens (CSS custom properties set
 * on :root in index.html, with fallbacks here), buttons, inputs and a visible focus ring.
 */
import { css } from 'lit';

/** Base styles every element adopts. */
export const baseStyles = css`
  :host {
    box-sizing: border-box;
    color: var(--fg, #1b1f24);
    font: inherit;
  }
  *,
  *::before,
  *::after {
    box-sizing: inherit;
  }
  :focus-visible {
    outline: 3px solid var(--focus, #1d4ed8);
    outline-offset: 2px;
  }
  button {
    font: inherit;
    cursor: pointer;
    border-radius: 8px;
    border: 1px solid var(--border, #c9d1d9);
    background: var(--surface, #fff);
    color: inherit;
    padding: 0.45rem 0.8rem;
    min-height: 2.5rem;
  }
  button:hover:not(:disabled) {
    background: var(--surface-hover, #f3f5f8);
  }
  button:disabled {
    cursor: not-allowed;
    opacity: 0.55;
  }
  button.primary {
    background: var(--accent, #1d4ed8);
    border-color: var(--accent, #1d4ed8);
    color: #fff;
  }
  button.primary:hover:not(:disabled) {
    background: var(--accent-hover, #1e40af);
  }
  button.danger {
    border-color: var(--danger, #b3261e);
    color: var(--danger, #b3261e);
  }
  input,
  textarea,
  select {
    font: inherit;
    color: inherit;
    background: var(--surface, #fff);
    border: 1px solid var(--border, #c9d1d9);
    border-radius: 8px;
    padding: 0.45rem 0.6rem;
  }
  .visually-hidden {
    position: absolute !important;
    width: 1px;
    height: 1px;
    margin: -1px;
    padding: 0;
    overflow: hidden;
    clip: rect(0 0 0 0);
    white-space: nowrap;
    border: 0;
  }
  .error {
    color: var(--danger, #b3261e);
  }
  .muted {
    color: var(--muted, #57606a);
  }
`;
