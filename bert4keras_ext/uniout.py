"""bert4keras's `snippets.uniout`, kept so `from bert4keras_ext.snippets import uniout` works.

In bert4keras (https://github.com/bojone/bert4keras) importing it imported the `uniout`
package on Python 2, which printed containers of unicode strings readably. Python 3 prints
them readably already, so, as bert4keras does there, this module does nothing.
"""
